"""Training (notebook 05): one run read as its stages, the LoRA loop, label-word alignment, checkpoints, several
processes.

- `stages`: `run(cfg) -> RunResult`, the stages in order (data -> model -> features -> zero-shot -> align -> tune ->
  evaluate -> real faces -> save) and the command line (`python -m emo_llama.train --help`);
- `items`: the splits and the instruction items a run trains on, with their sampling weights;
- `align`: label-word alignment of the new modules before LoRA (an addition to the paper);
- `loop`: the LoRA stage's optimizer loop (Eq. 6) with checkpoints and exact resume;
- `checkpoint`, `distributed`, `memory`: what is saved, what DDP/FSDP2 change, whether a run fits the device.
"""

from emo_llama.config import (
    NOTEBOOK_PARAMETERS,
    RECIPES,
    TrainConfig,
    config_from_parameters,
    parameters_cell,
    parse_args,
)
from emo_llama.train.stages import RunResult, main, run

__all__ = ["NOTEBOOK_PARAMETERS", "RECIPES", "RunResult", "TrainConfig", "config_from_parameters",
           "main", "parameters_cell", "parse_args", "run"]
