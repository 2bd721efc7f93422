"""The runtime: Lightning callbacks that execute ftsc schedules (imports torch and lightning).

    from ftsc.lightning import FinetuningScheduler, FTSCheckpoint, FTSEarlyStopping

`FinetuningScheduler` takes FinetuningScheduler's constructor options with the same names and
meanings, and reads `.ftsc` files as well as FTS YAML schedules; `FTSEarlyStopping` and
`FTSCheckpoint` are the companions FTS configs name, so a config migrates by changing the
package name only.

Modules, by responsibility: `callback` (the hooks), `schedule` (check, lower, write out),
`transitions` (when a phase ends: pure logic), `optim` and `reinit` (optimizer and scheduler
surgery), `params` (thawing), `checkpoint` (state formats, FTSCheckpoint), `early_stopping`,
`deps` (arranging the companion callbacks), `strategies` (single device, DDP, FSDP1, FSDP2),
`report` (the plan table and transition lines), `_private` (every private Lightning/torch name).
"""

from ftsc.lightning.callback import FinetuningScheduler
from ftsc.lightning.checkpoint import FTSCheckpoint
from ftsc.lightning.early_stopping import FTSEarlyStopping

__all__ = ["FTSCheckpoint", "FTSEarlyStopping", "FinetuningScheduler"]
