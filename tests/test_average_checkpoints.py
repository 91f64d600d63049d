"""train/average_checkpoints.py: weight averaging of a run's checkpoints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from inpaint_hub import AutoInpaintModel, LamaConfig, LamaModel


SCRIPT = Path(__file__).resolve().parents[1] / "train" / "average_checkpoints.py"
_spec = importlib.util.spec_from_file_location("average_checkpoints", SCRIPT)
average_checkpoints = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(average_checkpoints)


def _run_folder(tmp_path: Path, steps: list[int]) -> tuple[Path, list[LamaModel]]:
    """A fake run: checkpoint-<step>/generator folders holding differently seeded tiny LaMas."""
    run = tmp_path / "run"
    models = []
    for step in steps:
        torch.manual_seed(step)
        model = LamaModel(LamaConfig.tiny())
        with torch.no_grad():  # give the BatchNorm statistics distinct values too
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-1, 1)
                    module.num_batches_tracked.fill_(step)
        model.save_pretrained(run / f"checkpoint-{step}" / "generator")
        models.append(model)
    (run / "samples").mkdir()
    return run, models


def test_average_of_a_run_range(tmp_path: Path, capsys) -> None:
    run, models = _run_folder(tmp_path, [100, 200, 300, 400])
    output = tmp_path / "averaged"
    assert average_checkpoints.main([str(run), "--from-step", "200", "--to-step", "300", "--output", str(output)]) == 0
    assert "averaged 2 generators" in capsys.readouterr().out
    averaged = AutoInpaintModel.from_pretrained(output)
    assert isinstance(averaged, LamaModel) and averaged.config == models[0].config
    state, first, second = averaged.state_dict(), models[1].state_dict(), models[2].state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (first[key] + second[key]) / 2, rtol=0, atol=1e-6)
        else:  # num_batches_tracked: the newest checkpoint's
            assert torch.equal(value, second[key]), key
    assert (output / "README.md").is_file()


def test_explicit_checkpoint_and_model_folders(tmp_path: Path) -> None:
    run, models = _run_folder(tmp_path, [1, 2])
    folders = average_checkpoints.resolve_model_folders(
        [str(run / "checkpoint-1"), str(run / "checkpoint-2" / "generator")]
    )
    assert folders == [run / "checkpoint-1" / "generator", run / "checkpoint-2" / "generator"]
    assert average_checkpoints.resolve_model_folders([str(run)]) == folders  # oldest first


@pytest.mark.parametrize("what", ["nothing", "empty-range", "other-config"])
def test_errors_name_the_problem(tmp_path: Path, capsys, what: str) -> None:
    run, _ = _run_folder(tmp_path, [1, 2])
    if what == "nothing":
        args, needle = [str(tmp_path / "missing")], "not a checkpoint folder"
    elif what == "empty-range":
        args, needle = [str(run), "--from-step", "5"], "no checkpoint-<step>/generator between steps 5"
    else:
        LamaModel(LamaConfig.tiny().model_copy(update={"num_residual_blocks": 2})).save_pretrained(tmp_path / "other")
        args, needle = [str(run / "checkpoint-1"), str(tmp_path / "other")], "has another config"
    with pytest.raises(SystemExit) as exit_info:
        average_checkpoints.main([*args, "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_average_state_dicts_refuses_mismatched_states() -> None:
    with pytest.raises(ValueError, match="other tensors"):
        average_checkpoints.average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])
    with pytest.raises(ValueError, match="shapes differ"):
        average_checkpoints.average_state_dicts([{"a": torch.zeros(1)}, {"a": torch.zeros(2)}])
    with pytest.raises(ValueError, match="nothing"):
        average_checkpoints.average_state_dicts([])
