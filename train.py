"""Train any concept of the zoo: ``python train.py model=<concept> [key=value ...]``.

A thin shim so that the command works from the repository root; see mlzoo/train.py.
"""

from mlzoo.train import main

if __name__ == "__main__":
    main()
