"""``inpaint-hub eval`` end to end: the table, the JSON report, the card, and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image

from inpaint_hub.cli import main


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("eval_photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        y, x = np.mgrid[0:72, 0:96]
        base = np.stack([x * 2.5, y * 3.0, (x + y) * 1.5], axis=-1) + rng.normal(0, 10, (72, 96, 3))
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def _error(capsys, *needles: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("inpaint-hub eval: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_eval_prints_the_table_and_writes_json_markdown_and_card(photos: Path, tmp_path: Path, capsys) -> None:
    out, md, card = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "card.md"
    args = [
        "eval", "--model", "cv2-telea", "--images", str(photos), "--protocol", "lama-medium-256",
        "--protocol", "pennet-center", "--resize", "64", "--seed", "5", "--no-progress",
        "--out", str(out), "--markdown", str(md), "--model-card", str(card), "--dataset-type", "toy",
    ]  # fmt: skip
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "| `cv2-telea` | lama-medium-256 | all | 3 |" in stdout
    assert "| `cv2-telea` | pennet-center | 20-30% | 3 |" in stdout  # the centred square is exactly 25 %

    report = json.loads(out.read_text())
    assert report["settings"]["seed"] == 5 and report["settings"]["protocols"] == ["lama-medium-256", "pennet-center"]
    assert {"numpy", "opencv", "pillow", "scikit-image", "torch"} <= set(report["versions"])
    assert len(report["images"]) == 6 and all(r["error"] is None for r in report["images"])
    overall = [r for r in report["rows"] if r["bucket"] == "all"]
    assert [r["n"] for r in overall] == [3, 3]
    assert md.read_text() in stdout

    results = ModelCard.load(card).data.eval_results
    assert {(r.dataset_config, r.metric_type) for r in results} >= {
        ("pennet-center", "ssim"),
        ("lama-medium-256", "psnr"),
    }
    assert all(r.dataset_type == "toy" for r in results)

    assert "Repo card metadata block" not in card.read_text() and card.read_text().count("---") == 2

    # Same seed, same numbers (timings aside).
    out2 = tmp_path / "r2.json"
    assert main([*args[:-8], "--out", str(out2)]) == 0
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in report["images"]]
    again = [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(out2.read_text())["images"]]
    assert strip == again


def test_model_card_gets_the_first_models_results_only(photos: Path, tmp_path: Path, capsys) -> None:
    # One command prints the comparison table and writes the card of the first --model.
    card = tmp_path / "card.md"
    args = ["eval", "--model", "cv2-ns", "--model", "cv2-telea", "--images", str(photos), "--protocol",
            "lama-medium-256", "--resize", "64", "--no-progress", "--model-card", str(card)]  # fmt: skip
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "| `cv2-telea` | lama-medium-256 | all | 3 |" in stdout and "into " + str(card) in stdout
    table = {line.split(" | ")[0]: line for line in stdout.splitlines() if "| all |" in line}
    ns_psnr = float(table["| `cv2-ns`"].split(" | ")[4])
    results = ModelCard.load(card).data.eval_results
    assert ModelCard.load(card).data.model_name == "cv2-ns"
    assert [round(r.metric_value, 2) for r in results if r.metric_type == "psnr"] == [ns_psnr]


def test_eval_with_a_mask_folder_and_two_models(photos: Path, tmp_path: Path, capsys) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(2):  # p2 has no mask: skipped, reported
        mask = np.zeros((36, 48), np.uint8)  # half resolution: resized to the image
        mask[5 + i : 20, 10:30] = 255
        Image.fromarray(mask).save(masks / f"p{i}_mask.png")
    assert main(["eval", "--model", "cv2-telea", "--model", "cv2-ns", "--images", str(photos), "--masks", str(masks),
                 "--no-progress"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "| `cv2-ns` | masks:masks | all | 2 |" in captured.out
    assert "skipped 1 image(s): p2.png: no mask" in captured.err


def test_an_all_hole_mask_cannot_score_by_seeing_the_ground_truth(photos: Path, tmp_path: Path, capsys) -> None:
    full = tmp_path / "full.png"
    Image.fromarray(np.full((72, 96), 255, np.uint8)).save(full)
    out = tmp_path / "r.json"
    assert main(["eval", "--model", "cv2-telea", "--images", str(photos / "p0.png"), "--masks", str(full),
                 "--no-progress", "--out", str(out)]) == 0  # fmt: skip
    (result,) = json.loads(out.read_text())["images"]
    assert result["psnr"] < 30 and result["ssim"] < 0.9


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--images", "nowhere", "--protocol", "pennet-center"], ["nowhere", "does not exist"]),
        (["--images", "{photos}", "--masks", "nowhere"], ["nowhere", "does not exist"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--model", "./missing-model"], ["missing-model"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--device", "bogus"], ["--device"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--seed", "-1"], ["--seed"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--limit", "0"], ["limit"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--num-samples", "0"], ["--num-samples"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--lpips-weights", "nope.pth"], ["nope.pth"]),
        (
            ["--images", "{photos}", "--protocol", "pennet-center", "--lpips-lin-weights", "alex.pth"],
            ["--lpips-weights"],
        ),
        (["--images", "{photos}", "--protocol", "pennet-center", "--fid-weights", "{state_dict}"], ["TorchScript"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--out", "no/such/dir/r.json"], ["--out"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--resize-limit", "0"], ["--resize-limit", ">= 1"]),
        (["--images", "{photos}", "--protocol", "pennet-center", "--crop-margin", "-1"], ["--crop-margin", ">= 0"]),
    ],
)
def test_eval_errors_are_clean(photos: Path, tmp_path: Path, capsys, extra: list[str], needles: list[str]) -> None:
    state_dict = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, state_dict)
    extra = [a.format(photos=photos, state_dict=state_dict) for a in extra]
    assert main(["eval", "--model", "cv2-telea", "--no-progress", *extra]) == 1
    _error(capsys, *needles)


def test_unknown_protocol_is_an_argparse_error(photos: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model", "cv2-telea", "--images", str(photos), "--protocol", "lama-huge-512"])
    assert exc.value.code == 2 and "lama-huge-512" in capsys.readouterr().err


def test_hd_strategy_settings_reach_the_pipeline_and_the_report(photos: Path, tmp_path: Path, monkeypatch) -> None:
    from inpaint_hub.pipeline import InpaintPipeline

    seen = []
    original = InpaintPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append({k: kwargs[k] for k in ("hd_strategy", "resize_limit", "crop_trigger_size", "crop_margin")})
        return original(self, *args, **kwargs)

    monkeypatch.setattr(InpaintPipeline, "__call__", spy)
    out = tmp_path / "r.json"
    args = [
        "eval", "--model", "cv2-telea", "--images", str(photos), "--protocol", "pennet-center", "--resize", "64",
        "--no-progress", "--hd-strategy", "resize", "--resize-limit", "32", "--crop-margin", "7", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    expected = {"hd_strategy": "resize", "resize_limit": 32, "crop_trigger_size": 800, "crop_margin": 7}
    assert seen == [expected] * 3
    settings = json.loads(out.read_text())["settings"]
    assert {k: settings[k] for k in expected} == expected
