"""What every benchmark prints first: the machine and the command."""

from __future__ import annotations

import platform
import resource
import shlex
import sys


def header() -> str:
    import numpy as np
    import torch

    from primetime.machine import describe

    return (
        f"machine: {describe()}, {platform.system()} {platform.release()}\n"
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}\n"
        f"command: {shlex.join([sys.executable.split('/')[-1], *sys.argv])}"
    )


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
