"""Train any concept of the zoo: ``python train.py model=<concept> [key=value ...]``.

A thin shim so that the command works from the repository root; see mlzoo/run/train.py.
"""

from mlzoo.run.train import main

if __name__ == "__main__":
    main()
