"""Bridges from taorl to other training stacks. Each lives in its own sub-package and imports its
stack lazily, so `import taorl` never needs them (verl: taorl.integrations.verl, docs/verl.md; TRL:
taorl.integrations.trl, docs/trl.md). taorl.integrations.common holds the plain-torch steps both
share (turns from a response mask, the TAO-RL advantage of a batch of rows, the run-directory
tables); it imports neither stack."""
