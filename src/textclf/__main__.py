"""``python -m textclf``: the command line (:mod:`textclf.cli`).

A worker process that torchrun started (``textclf train --nproc``, or torchrun itself) leaves with
``os._exit`` once its command is done and the exit handlers ran: the process group is closed by then,
but C++ threads of the distributed backend that touch Python objects during the interpreter's
finalization can abort the process ("terminate called without an active exception", seen once in CI
after a finished run), and the launcher would count that abort as a failed run.
"""

import atexit
import os
import sys
import traceback

from .cli import main


def _torchrun_worker() -> bool:
    return "LOCAL_WORLD_SIZE" in os.environ and "RANK" in os.environ  # as training.distributed.launched


if _torchrun_worker():
    try:
        main()
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:  # --debug lets errors through: their traceback, then the same way out
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
else:
    main()
