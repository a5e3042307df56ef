"""Shared fixtures. Tests run offline: a hidden model-hub download must fail, not hang."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def cropper():
    from emo_llama.faces import FaceCropper

    return FaceCropper(device="cpu")


@pytest.fixture(scope="session")
def astronaut():
    from emo_llama.faces import samples

    return samples.astronaut()
