"""mlzoo: a PyTorch reference model zoo.

Every core concept of deep learning is one readable LightningModule (``mlzoo/models``) with one
Hydra config (``configs/model``), trained by one command: ``python train.py model=<concept>``.
"""

from mlzoo.core.errors import ZooError

__all__ = ["ZooError"]
__version__ = "0.1.0"
