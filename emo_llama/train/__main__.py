"""`python -m emo_llama.train`: one training run from the command line (flags: `--help`)."""

from emo_llama.train.stages import main

main()
