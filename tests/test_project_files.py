"""The set-up files agree with each other (conda cannot be exercised here, so check it statically)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_requirements_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "emo-llama"
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + project["optional-dependencies"]["dev"]
    assert sorted(pip_section) == sorted(expected)


def test_cpu_setup_pins_torch_and_never_installs_torchvision():
    constraints = (ROOT / "requirements" / "constraints-cpu.txt").read_text()
    assert re.search(r"^torch==2\.13\.0\+cpu$", constraints, re.M)
    for name in ("pyproject.toml", "environment.yml", "requirements/constraints-cpu.txt",
                 "requirements/no-deps.txt", "Makefile"):
        text = "\n".join(line for line in (ROOT / name).read_text().splitlines()
                         if not line.lstrip().startswith("#"))
        assert "torchvision" not in text, name
    no_deps = [_name(x) for x in (ROOT / "requirements" / "no-deps.txt").read_text().splitlines()
               if x.strip() and not x.startswith("#")]
    assert "facenet-pytorch" in no_deps


def test_no_unsafe_torch_load_in_the_code():
    for path in list((ROOT / "emo_llama").rglob("*.py")) + list((ROOT / "scripts").rglob("*.py")):
        for line in path.read_text().splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
