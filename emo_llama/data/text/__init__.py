"""Instruction data: category records (`instructions`), conversations (`conversations`) and the LLaVA /
LLaMA-VID JSON they are written in (`llava_json`); Emotion-LLaMA's MERR annotations, read and written (`merr`).
The prompt texts themselves live in `emo_llama.prompts`."""

from emo_llama.data.text.merr import (
    MerrFormatError,
    MerrRecord,
    merr_record,
    read_merr_json,
    read_merr_txt,
    write_merr_json,
)

__all__ = ["MerrFormatError", "MerrRecord", "merr_record", "read_merr_json", "read_merr_txt", "write_merr_json"]
