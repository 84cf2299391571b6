"""LightningDataModules. Offline defaults (digits, diabetes) ship with scikit-learn; the
torchvision sets (mnist, fashion_mnist, cifar10) read files from ``data.root`` and download only
with ``data.download=true``."""
