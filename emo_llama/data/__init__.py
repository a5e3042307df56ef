"""Data and protocol: loaders for six FER benchmarks and the bundled `mini`, instructions, parsing, metrics.

`get_dataset(name, root, split, fold)` returns a `FERDataset` whose samples carry canonical labels
(labels.CANONICAL), so instructions, parsing and metrics work the same on every dataset.
"""

from emo_llama.data import image_sets, mini, video_sets  # noqa: F401  (register the loaders)
from emo_llama.data.base import (
                                 REGISTRY,
                                 DatasetConfig,
                                 DatasetFormatError,
                                 DatasetNotFoundError,
                                 FERDataset,
                                 Sample,
                                 default_cache_dir,
                                 get_dataset,
)
from emo_llama.data.conversations import LLMConversationGenerator, OfflineConversationGenerator
from emo_llama.data.instructions import (
                                 category_instruction,
                                 category_instructions,
                                 zero_shot_question,
)
from emo_llama.data.labels import BASIC7, CANONICAL, UnknownLabelError, canonical_label
from emo_llama.data.llava_json import InstructionFormatError, read_llava_json, write_llava_json
from emo_llama.data.metrics import compute_metrics, format_report
from emo_llama.data.parsing import parse_answer, parse_answers
from emo_llama.data.sampling import make_weighted_sampler
from emo_llama.prompts import agr_prompt

__all__ = [
    "BASIC7", "CANONICAL", "REGISTRY", "DatasetConfig", "DatasetFormatError", "DatasetNotFoundError", "FERDataset",
    "InstructionFormatError", "LLMConversationGenerator", "OfflineConversationGenerator", "Sample",
    "UnknownLabelError", "agr_prompt", "canonical_label", "category_instruction", "category_instructions",
    "compute_metrics", "default_cache_dir", "format_report", "get_dataset", "make_weighted_sampler",
    "parse_answer", "parse_answers", "read_llava_json", "write_llava_json", "zero_shot_question",
]
