"""`python -m taorl.integrations.verl`: import verl (which loads the plugin through its entry point)
and say which TAO-RL names verl's registries hold; exit 1 if any is missing."""

from __future__ import annotations

import sys


def main() -> int:
    import verl

    if "taorl.integrations.verl.plugin" not in sys.modules:
        print("taorl verl plugin: NOT loaded by `import verl` (is taorl installed in this environment, and "
              "VERL_USE_EXTERNAL_PLUGINS not 'none'?)", file=sys.stderr)
        return 1
    from taorl.integrations.verl.registry import NAMES, registered

    ok = registered()
    for kind, name in NAMES.items():
        print(f"  {kind:14s} {name:18s} {'registered' if ok[kind] else 'MISSING'}")
    print(f"verl {verl.__version__}: taorl plugin " + ("ready" if all(ok.values()) else "INCOMPLETE"))
    return 0 if all(ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
