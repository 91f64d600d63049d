"""Tests of inpaint_hub.data: file discovery, bad files, augmentation, determinism, the sampler, sample grids.

Every image is generated into ``tmp_path`` by the test itself; nothing is downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader

from inpaint_hub.data import (
    InpaintDataset,
    ResumableRandomSampler,
    find_dataset_files,
    make_grid,
    save_image_grid,
)


def _noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 ``[H, W, 3]`` with structure (a gradient) plus noise, so crops, flips and rotations all show."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 160, width, dtype=np.float32)[None, :, None] + np.linspace(0, 60, height)[:, None, None]
    return np.clip(ramp + rng.integers(0, 90, (height, width, 3)), 0, 255).astype(np.uint8)


def _write(path: Path, array: np.ndarray | None = None, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_noise(24, 32) if array is None else array).save(path, **save_kwargs)
    return path


def _folder(tmp_path: Path, count: int, height: int = 40, width: int = 48, name: str = "images") -> Path:
    root = tmp_path / name
    for i in range(count):
        _write(root / f"{i:03d}.png", _noise(height, width, seed=i))
    return root


def _stack(dataset: InpaintDataset) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it["image"] for it in items]), torch.stack([it["mask"] for it in items])


# ------------------------------------------------------------------------------------------------- files


def test_files_recursive_extensions_hidden_skipped_sorted(tmp_path):
    root = tmp_path / "data"
    for relative in ["b.png", "a.jpg", "sub/c.JPG", "sub/deep/d.jpeg", "e.webp", "Z.PNG", "sub/f.WebP"]:
        _write(root / relative)
    for relative in [".hidden.png", "._a.jpg", ".cache/g.png", "sub/.git/h.png", "i.bmp", "j.tif"]:
        _write(root / relative)
    (root / "notes.txt").write_text("not an image")
    (root / "folder.png").mkdir()  # a folder with an image suffix is not a file

    expected = ["Z.PNG", "a.jpg", "b.png", "e.webp", "sub/c.JPG", "sub/deep/d.jpeg", "sub/f.WebP"]
    assert [p.relative_to(root).as_posix() for p in find_dataset_files(root)] == expected
    dataset = InpaintDataset(root, size=16)
    assert [p.relative_to(root).as_posix() for p in dataset.files] == expected
    assert len(dataset) == len(expected)

    # several roots: in the order given, overlaps kept once; a single file is a root too
    other = _write(tmp_path / "other" / "x.png")
    files = find_dataset_files([other.parent, root / "sub", root])
    assert files[0] == other
    assert [p.relative_to(root).as_posix() for p in files[1:]] == (
        ["sub/c.JPG", "sub/deep/d.jpeg", "sub/f.WebP"] + [e for e in expected if not e.startswith("sub/")]
    )
    assert InpaintDataset(str(other), size=16).files == [other]


def test_corrupt_files_skipped_with_one_warning_each(tmp_path, caplog):
    root = _folder(tmp_path, 3)
    (root / "garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    (root / "empty.png").write_bytes(b"")
    good_png = (root / "000.png").read_bytes()
    (root / "bad_crc.png").write_bytes(good_png[:60] + bytes([good_png[60] ^ 0xFF]) + good_png[61:])

    with caplog.at_level(logging.WARNING, logger="inpaint_hub.data"):
        dataset = InpaintDataset(root, size=32)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name in ("garbage.jpg", "empty.png", "bad_crc.png"):
        assert sum(name in m for m in messages) == 1, messages
    assert len(messages) == 3
    assert [p.name for p in dataset.files] == ["000.png", "001.png", "002.png"]
    item = dataset[2]
    assert item["image"].shape == (3, 32, 32)


def test_decode_failure_uses_next_index_and_warns_once(tmp_path, caplog):
    root = tmp_path / "images"
    for i in range(3):
        _write(root / f"{i}.jpg", _noise(40, 48, seed=i), quality=95)
    for name in ("1.jpg", "2.jpg"):  # a valid header, truncated pixels: passes the header check
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])

    dataset = InpaintDataset(root, size=32, crop="center", flip=False)
    assert len(dataset) == 3  # only found while decoding
    with caplog.at_level(logging.WARNING, logger="inpaint_hub.data"):
        first = dataset[1]
        again = dataset[1]
        wrapped = dataset[2]  # 2 is bad too: wraps around to 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "1.jpg" in warnings[0] and "2.jpg" in warnings[1]
    expected = dataset[0]
    for item in (first, again, wrapped):
        assert item["index"] == 0
        assert torch.equal(item["image"], expected["image"]) and torch.equal(item["mask"], expected["mask"])


def test_empty_dataset_raises_naming_the_roots(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="nothing_here") as info:
        InpaintDataset(empty)
    assert "no image files" in str(info.value)

    broken = tmp_path / "all_broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="all_broken.*") as info:
        InpaintDataset([broken, empty])
    assert "nothing_here" in str(info.value) and "none usable" in str(info.value)

    with pytest.raises(FileNotFoundError, match="missing"):
        InpaintDataset(tmp_path / "missing")


def test_min_size_and_bad_arguments(tmp_path):
    root = tmp_path / "mixed"
    _write(root / "big.png", _noise(64, 80))
    _write(root / "small.png", _noise(20, 90))
    assert [p.name for p in InpaintDataset(root, size=16, min_size=32).files] == ["big.png"]
    assert len(InpaintDataset(root, size=16, check_files=False)) == 2
    with pytest.raises(ValueError, match="crop"):
        InpaintDataset(root, crop="bogus")
    with pytest.raises(ValueError, match="unknown mask protocol"):
        InpaintDataset(root, mask_protocol="no-such-protocol")
    with pytest.raises(ValueError, match="size"):
        InpaintDataset(root, size=0)
    with pytest.raises(ValueError, match="seed"):
        InpaintDataset(root, seed=-1)
    dataset = InpaintDataset(root, size=16)
    with pytest.raises(ValueError, match="epoch"):
        dataset.set_epoch(-1)
    with pytest.raises(IndexError):
        dataset[2]
    assert torch.equal(dataset[-1]["image"], dataset[1]["image"])


def test_mask_size_draws_the_protocol_at_its_own_scale(tmp_path, monkeypatch):
    import inpaint_hub.data as data_module
    from inpaint_hub.image_processing import resize_mask

    root = _folder(tmp_path, 2, 80, 80)
    native = InpaintDataset(root, size=64, mask_protocol="lama-train", seed=3)
    scaled = InpaintDataset(root, size=64, mask_protocol="lama-train", seed=3, mask_size=256)
    drawn = []
    make_mask = data_module.make_mask
    monkeypatch.setattr(data_module, "make_mask", lambda *a: drawn.append(make_mask(*a)) or drawn[-1])
    for i in range(2):
        a, b = native[i], scaled[i]
        assert torch.equal(a["image"], b["image"])  # only the mask changes
        # drawn at 256 px, then max-pooled to 64 px as the pipeline's resize HD strategy brings a mask down
        assert drawn[-1].shape == (256, 256)
        assert torch.equal(b["mask"][0], torch.from_numpy(resize_mask(drawn[-1] != 0, (64, 64)).astype(np.float32)))
    monkeypatch.undo()
    # The protocol keeps its hole share: LaMa's training masks drawn at 64 px cover far more of the image.
    shares = [scaled[i % 2]["mask"].mean().item() for i in range(2)]
    many = {
        size: np.mean([InpaintDataset(root, size=64, mask_protocol="lama-train", seed=s, mask_size=size)[0]["mask"]
                       .mean().item() for s in range(30)])
        for size in (64, 256)
    }  # fmt: skip
    assert many[256] < many[64] - 0.1, (many, shares)
    with pytest.raises(ValueError, match="mask_size"):
        InpaintDataset(root, size=64, mask_size=0)


# ------------------------------------------------------------------------------------------------- items


@pytest.mark.parametrize("crop", ["random", "center", "resize", "fit"])
def test_item_dtype_shape_range_and_binary_mask(tmp_path, crop):
    dataset = InpaintDataset(_folder(tmp_path, 3, 50, 70), size=48, crop=crop, mask_protocol="lama-train")
    for i in range(len(dataset)):
        item = dataset[i]
        assert set(item) == {"image", "mask", "index"}
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 48, 48)
        assert item["mask"].dtype == torch.float32 and item["mask"].shape == (1, 48, 48)
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        assert item["mask"].sum() > 0
        assert isinstance(item["index"], int) and item["index"] == i


def test_fit_crop_is_a_random_window_of_the_short_side_resize(tmp_path):
    # A 60 x 120 image with a horizontal ramp: "fit" resizes it to 32 x 64 (as "center" does) and then places the
    # 32 x 32 window at random along the long side; "random" would cut 32 x 32 at native scale instead.
    ramp = np.tile(np.linspace(0, 255, 120).astype(np.uint8)[None, :, None], (60, 1, 3))
    root = tmp_path / "ramp"
    root.mkdir()
    Image.fromarray(ramp).save(root / "ramp.png")
    resized = np.asarray(Image.fromarray(ramp).resize((64, 32), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    dataset = InpaintDataset(root, size=32, crop="fit", flip=False, mask_protocol="lama-train")
    lefts = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        image = dataset[0]["image"].permute(1, 2, 0).numpy()
        matches = [left for left in range(33) if np.allclose(image, resized[:, left : left + 32], atol=1 / 255)]
        assert len(matches) == 1, f"epoch {epoch}: not a window of the short-side resize"
        lefts.add(matches[0])
    assert len(lefts) > 1, "the window never moved"
    native = InpaintDataset(root, size=32, crop="random", flip=False, mask_protocol="lama-train")[0]["image"]
    assert native[0, 0, -1] - native[0, 0, 0] < 0.3  # a native-scale window spans ~1/4 of the ramp, not 1/2


def test_same_seed_epoch_index_gives_identical_items(tmp_path):
    root = _folder(tmp_path, 6, 60, 80)
    kwargs = dict(size=32, seed=7, jitter=True, mask_protocol="deepfill-freeform")
    a, b = InpaintDataset(root, **kwargs), InpaintDataset(root, **kwargs)
    for epoch in (0, 3):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        forward = [a[i] for i in range(len(a))]
        backward = [b[i] for i in reversed(range(len(b)))][::-1]  # another instance, another call order
        for x, y in zip(forward, backward):
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    other_seed = InpaintDataset(root, **{**kwargs, "seed": 8})
    other_seed.set_epoch(3)
    assert not torch.equal(_stack(other_seed)[0], _stack(a)[0])


def test_dataloader_workers_match_in_process_items_across_epochs(tmp_path):
    dataset = InpaintDataset(_folder(tmp_path, 8, 50, 60), size=32, seed=3, jitter=True)
    sampler = ResumableRandomSampler(dataset, seed=3)
    serial = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=0)
    workers = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=2, persistent_workers=True)
    per_epoch = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)  # forwarded to the dataset, and seen by the persistent workers
        got = {}
        for loader in (serial, workers):
            batches = list(loader)
            got[loader.num_workers] = (
                torch.cat([b["image"] for b in batches]),
                torch.cat([b["mask"] for b in batches]),
                torch.cat([b["index"] for b in batches]),
            )
        assert got[0][2].tolist() == list(sampler)
        for x, y in zip(got[0], got[2]):
            assert torch.equal(x, y)
        order = got[0][2].tolist()
        direct = [dataset[i] for i in order]  # the main process's dataset, at the same epoch
        assert torch.equal(got[2][0], torch.stack([d["image"] for d in direct]))
        assert torch.equal(got[2][1], torch.stack([d["mask"] for d in direct]))
        per_epoch.append(got[2])
    assert dataset.epoch == 1
    assert not torch.equal(per_epoch[0][0], per_epoch[1][0])


def test_different_epoch_changes_crop_and_mask(tmp_path):
    dataset = InpaintDataset(_folder(tmp_path, 4, 200, 240), size=128, flip=False, mask_protocol="lama-train")
    images0, masks0 = _stack(dataset)
    dataset.set_epoch(1)
    images1, masks1 = _stack(dataset)
    for i in range(len(dataset)):
        assert not torch.equal(images0[i], images1[i])
        assert not torch.equal(masks0[i], masks1[i])
    dataset.set_epoch(0)
    assert torch.equal(_stack(dataset)[0], images0)


def test_random_crop_is_a_window_of_the_image(tmp_path):
    array = _noise(40, 50)
    dataset = InpaintDataset(_write(tmp_path / "a.png", array), size=16, flip=False)
    found = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        crop = np.rint(dataset[0]["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        hits = [
            (top, left)
            for top in range(40 - 16 + 1)
            for left in range(50 - 16 + 1)
            if np.array_equal(array[top : top + 16, left : left + 16], crop)
        ]
        assert len(hits) == 1
        found.add(hits[0])
    assert len(found) > 1


def test_small_images_are_upscaled(tmp_path):
    array = _noise(20, 30)
    path = _write(tmp_path / "small.png", array)
    item = InpaintDataset(path, size=32, flip=False)[0]
    assert item["image"].shape == (3, 32, 32)
    enlarged = np.asarray(Image.fromarray(array).resize((48, 32), Image.Resampling.BICUBIC))  # short side 20 -> 32
    crop = np.rint(item["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert any(np.array_equal(enlarged[:, left : left + 32], crop) for left in range(48 - 32 + 1))


def test_center_crop_is_deterministic_and_exact(tmp_path):
    array = _noise(60, 90)
    path = _write(tmp_path / "wide.png", array)
    dataset = InpaintDataset(path, size=40, crop="center", flip=False, mask_protocol="pennet-center")
    resized = np.asarray(Image.fromarray(array).resize((60, 40), Image.Resampling.BICUBIC))  # short side 60 -> 40
    expected = torch.from_numpy(resized[:, 10:50].astype(np.float32) / 255).permute(2, 0, 1)
    first = dataset[0]
    assert torch.equal(first["image"], expected)
    assert first["mask"][0, 10:30, 10:30].eq(1).all() and first["mask"].sum() == 400
    dataset.set_epoch(5)  # nothing random with this protocol: the same item
    assert torch.equal(dataset[0]["image"], first["image"]) and torch.equal(dataset[0]["mask"], first["mask"])

    # an evaluation protocol draws its masks from (seed, epoch, index): fixed for a validation set at epoch 0
    val = [InpaintDataset(path, size=40, crop="center", flip=False, mask_protocol="lama-thick-256") for _ in range(2)]
    assert torch.equal(val[0][0]["mask"], val[1][0]["mask"])
    assert torch.equal(val[0][0]["image"], expected)


def test_resize_mode_resizes_the_whole_image(tmp_path):
    array = _noise(30, 70)
    item = InpaintDataset(_write(tmp_path / "a.png", array), size=32, crop="resize", flip=False)[0]
    resized = np.asarray(Image.fromarray(array).resize((32, 32), Image.Resampling.BICUBIC))
    assert torch.equal(item["image"], torch.from_numpy(resized.astype(np.float32) / 255).permute(2, 0, 1))


def test_flip_happens_for_about_half_of_the_items(tmp_path):
    root = _folder(tmp_path, 40, 32, 32)
    plain = InpaintDataset(root, size=32, crop="center", flip=False)
    flipping = InpaintDataset(root, size=32, crop="center", flip=True)
    flipped = 0
    for i in range(len(plain)):
        a, b = plain[i]["image"], flipping[i]["image"]
        if torch.equal(b, a.flip(-1)):
            flipped += 1
        else:
            assert torch.equal(a, b)
    assert 10 <= flipped <= 30  # Binomial(40, 0.5): 1 - 0.998 outside, and the draws are fixed by the seed


def test_jitter_stays_in_range_and_changes_images(tmp_path):
    root = _folder(tmp_path, 12, 48, 48)
    plain = InpaintDataset(root, size=48, crop="center", flip=False, jitter=False)
    jittered = InpaintDataset(root, size=48, crop="center", flip=False, jitter=True)
    changed = 0
    for i in range(len(plain)):
        image = jittered[i]["image"]
        assert image.dtype == torch.float32 and torch.isfinite(image).all()
        assert 0.0 <= image.min() and image.max() <= 1.0
        changed += not torch.equal(image, plain[i]["image"])
        assert torch.equal(image, jittered[i]["image"])
    assert changed >= 6  # each item is left alone with probability 1/8


def test_exif_orientation_grayscale_and_16_bit(tmp_path):
    array = _noise(20, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _write(tmp_path / "rotated.jpg", array, exif=exif, quality=95)
    gray = tmp_path / "gray.png"
    Image.fromarray(array[..., 0]).save(gray)
    deep = tmp_path / "deep.png"
    Image.fromarray(array[..., 1].astype(np.uint16) * 257).save(deep)  # 16-bit grayscale: v * 257 / 65535 = v / 255
    dataset = InpaintDataset([path, gray, deep], size=16)
    rotated = dataset.read(0)
    assert rotated.mode == "RGB" and rotated.size == (20, 40)
    gray_rgb = np.asarray(dataset.read(1))
    assert gray_rgb.shape == (20, 40, 3) and np.array_equal(gray_rgb[..., 2], array[..., 0])
    deep_rgb = np.asarray(dataset.read(2))
    assert np.array_equal(deep_rgb[..., 0], array[..., 1]) and np.array_equal(deep_rgb[..., 1], array[..., 1])
    for i in range(3):
        assert dataset[i]["image"].shape == (3, 16, 16)


# ------------------------------------------------------------------------------------------------- sampler


def test_sampler_permutations():
    sampler = ResumableRandomSampler(50, seed=4)
    first = list(sampler)
    assert len(sampler) == 50 and sorted(first) == list(range(50)) and first != list(range(50))
    assert list(ResumableRandomSampler(50, seed=4)) == first == list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(50)) and second != first
    assert list(ResumableRandomSampler(50, seed=5)) != first
    ordered = ResumableRandomSampler(range(7), shuffle=False)
    ordered.set_epoch(3)
    assert list(ordered) == list(range(7))
    assert list(ResumableRandomSampler(0)) == []
    with pytest.raises(TypeError):
        ResumableRandomSampler(object())
    with pytest.raises(ValueError):
        ResumableRandomSampler(5, seed=-2)


def test_sampler_forwards_set_epoch_to_the_dataset(tmp_path):
    dataset = InpaintDataset(_folder(tmp_path, 2), size=16)
    sampler = ResumableRandomSampler(dataset, seed=1)
    assert len(sampler) == 2
    sampler.set_epoch(4)
    assert dataset.epoch == 4 and sampler.epoch == 4


def _shards(batches: list[list[int]], num_processes: int) -> list[list[int]]:
    """Accelerate's split of a batch stream (``split_batches=False``): batch ``k`` goes to process ``k % n``."""
    return [[i for batch in batches[rank::num_processes] for i in batch] for rank in range(num_processes)]


def test_sharded_batches_cover_every_index_once_per_epoch(tmp_path):
    dataset = InpaintDataset(_folder(tmp_path, 12, 20, 20), size=16)
    sampler = ResumableRandomSampler(dataset, seed=11)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = [batch["index"].tolist() for batch in loader]
        ranks = _shards(batches, 2)
        assert all(len(r) == 6 for r in ranks)
        assert sorted(ranks[0] + ranks[1]) == list(range(12))
        assert not set(ranks[0]) & set(ranks[1])
        orders.append(batches)

        # resume: a fresh sampler at the same (seed, epoch), first k batches skipped, gives the rest of the epoch
        fresh = ResumableRandomSampler(12, seed=11)
        fresh.set_epoch(epoch)
        assert list(BatchSampler(fresh, 2, drop_last=False))[3:] == batches[3:]
    assert orders[0] != orders[1] != orders[2]


def test_accelerate_batch_sampler_shard_covers_every_index_once():
    data_loader = pytest.importorskip("accelerate.data_loader")
    sampler = ResumableRandomSampler(16, seed=2)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        seen = []
        for rank in range(2):
            shard = data_loader.BatchSamplerShard(
                BatchSampler(sampler, 2, drop_last=False), num_processes=2, process_index=rank
            )
            seen += [i for batch in shard for i in batch]
        assert sorted(seen) == list(range(16))


# ------------------------------------------------------------------------------------------------- grids


def test_make_grid_layout_and_padding():
    images = torch.stack([torch.full((3, 4, 6), 0.1 * (i + 1)) for i in range(5)])
    grid = make_grid(images, nrow=3, padding=2, value=0.5)
    assert grid.shape == (3, 2 * (4 + 2) + 2, 3 * (6 + 2) + 2)
    for i in range(5):
        top, left = 2 + (i // 3) * 6, 2 + (i % 3) * 8
        assert torch.equal(grid[:, top : top + 4, left : left + 6], images[i])
    covered = torch.zeros(grid.shape[1:], dtype=torch.bool)
    for i in range(5):
        top, left = 2 + (i // 3) * 6, 2 + (i % 3) * 8
        covered[top : top + 4, left : left + 6] = True
    assert grid[:, ~covered].eq(0.5).all()  # padding, border and the empty sixth cell

    assert torch.equal(make_grid(list(images), nrow=3, padding=2, value=0.5), grid)
    assert make_grid(images[:2], nrow=8, padding=0).shape == (3, 4, 12)
    assert torch.equal(make_grid(images[:1], nrow=1, padding=0), images[0])
    masks = torch.ones(2, 1, 4, 6)
    assert make_grid(masks, nrow=2, padding=1, value=0.0).shape == (3, 6, 15)
    with pytest.raises(ValueError):
        make_grid(torch.zeros(2, 2, 4, 4), nrow=2)
    with pytest.raises(ValueError):
        make_grid([torch.zeros(3, 4, 4), torch.zeros(3, 5, 4)], nrow=2)


def test_save_image_grid_writes_png_atomically(tmp_path):
    inputs, outputs = torch.rand(3, 3, 8, 10), torch.rand(2, 3, 8, 10)
    path = save_image_grid([inputs, outputs, torch.ones(3, 1, 8, 10)], tmp_path / "samples" / "step_100.png")
    assert path == tmp_path / "samples" / "step_100.png"
    assert [p.name for p in path.parent.iterdir()] == ["step_100.png"]  # no temporary file left
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (3 * 12 + 2, 3 * 10 + 2)
        pixels = np.asarray(image)
    expected = np.rint(inputs[1].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    assert np.array_equal(pixels[2:10, 14:24], expected)
    assert (pixels[12:20, 26:36] == 255).all()  # the missing third image of row 2
    with pytest.raises(ValueError):
        save_image_grid([], tmp_path / "x.png")
