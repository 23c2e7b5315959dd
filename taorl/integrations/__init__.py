"""Bridges from taorl to other training stacks. Each lives in its own sub-package and imports its
stack lazily, so `import taorl` never needs them (verl: taorl.integrations.verl, docs/verl.md)."""
