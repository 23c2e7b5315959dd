"""`taorl model prepare|path [NAME]`: build a built-in model's cache once, or say where it lives.

Kept apart from taorl.models: preparing `smollm2-135m-primed` runs taorl sft (the trainer), which
itself loads models, so loading a model never imports the code that primes one.
"""

from __future__ import annotations

import sys

from taorl import models
from taorl.errors import UserError


def model_main(args) -> int:
    """`taorl model prepare|path [NAME]`: convert a built-in model once / print where it lives."""
    name = getattr(args, "name", models.SMOLLM2) or models.SMOLLM2
    if name not in models.NAMES:
        raise UserError(f"{name!r}: expected one of {', '.join(models.NAMES)}")
    if name == models.PRIMED:
        if args.action == "path":
            try:
                print(models.primed_smollm2())
            except UserError:
                print(f"{models.cache_root() / 'primed'} (not primed yet)")
            return 0
        from taorl.train.sft import primed_weights  # the CLI primes; loading models never does

        print(primed_weights(models.primed_config()))
        return 0
    if args.action == "path":
        d = models.smollm2_dir() if name == models.SMOLLM2 else models.tokenizer_dir()
        files = models._MODEL_FILES if name == models.SMOLLM2 else models._TOKENIZER_FILES
        print(d if models._complete(d, files) else f"{d} (not prepared)")
        return 0
    d = models.prepare_smollm2() if name == models.SMOLLM2 else models.prepare_tokenizer()
    print(d, file=sys.stdout)
    return 0
