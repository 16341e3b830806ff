"""The models: ``nn.Module``s only (single RBMs and their composites), the contract they meet
(``contract``) and the one factory that owns the kinds (``factory``). Training them lives in
``rbmcore.training``."""
