"""The runtime: Lightning callbacks that execute ftsc schedules (imports torch and lightning).

    from ftsc.lightning import FinetuningScheduler, FTSEarlyStopping

`FinetuningScheduler` takes FinetuningScheduler's constructor options with the same names and
meanings, and reads `.ftsc` files as well as FTS YAML schedules.
"""

from ftsc.lightning.callback import FinetuningScheduler, FTSEarlyStopping

__all__ = ["FTSEarlyStopping", "FinetuningScheduler"]
