"""Train the region-code cell reader (models/plate_cell.onnx) on synthetic cells, on the CPU.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python models/training/train_cell.py [--samples 120000] [--epochs 8] [--seed 7]

A small CNN reads the two digits of a UZ/KG region-code cut (``cell_data``): two heads of 11
classes (0-9, and NONE: no digit there). Trained only on ``cell_data`` samples, seeded
(torch, numpy), single-threaded data generation, 2 torch threads: about 20 minutes on the
2-core development machine. Writes the ONNX file and its manifest with sha256 and the
held-out synthetic accuracy; the real-image figures are in bench/recognition/RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge.recognize.region import CELL_HEIGHT as HEIGHT
from edge.recognize.region import CELL_WIDTH as WIDTH
from edge.recognize.region import NO_DIGIT as NONE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cell_data import sample

MODELS = Path(__file__).resolve().parents[1]
NAME = "plate_cell"
VERSION = "1"


class CellNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.features = nn.Sequential(
            block(1, 32),
            block(32, 32),
            nn.MaxPool2d(2),  # 12x16
            block(32, 64),
            block(64, 64),
            nn.MaxPool2d(2),  # 6x8
            block(64, 96),
            nn.MaxPool2d(2),  # 3x4
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.Linear(96 * 3 * 4, 128),
            nn.ReLU(),
            nn.Linear(128, 2 * (NONE + 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-range grey (N, 1, H, W) -> per position log-probabilities (N, 2, 11)."""
        x = x / 127.5 - 1.0
        logits = self.head(self.features(x)).view(-1, 2, NONE + 1)
        return torch.log_softmax(logits, dim=-1)


def make_set(seed: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    images = np.empty((count, 1, HEIGHT, WIDTH), np.float32)
    labels = np.empty((count, 2), np.int64)
    for i in range(count):
        image, label = sample(rng)
        images[i, 0] = image
        labels[i] = label
    return torch.from_numpy(images), torch.from_numpy(labels)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [model(images[i : i + 1024]).argmax(-1) for i in range(0, len(images), 1024)]
        )
    return float((pred == labels).all(dim=1).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=120_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=MODELS)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    started = time.monotonic()
    train_x, train_y = make_set(args.seed, args.samples)
    test_x, test_y = make_set(args.seed + 1000, 5000)
    print(f"data: {args.samples} + 5000 samples in {time.monotonic() - started:.0f} s", flush=True)
    model = CellNet()
    steps = args.epochs * (args.samples // 256)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.NLLLoss()
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(args.samples, generator=generator)
        total = 0.0
        for start in range(0, args.samples - 255, 256):
            batch = order[start : start + 256]
            x, y = train_x[batch], train_y[batch]
            out = model(x)
            loss = loss_fn(out.reshape(-1, NONE + 1), y.reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        print(
            f"epoch {epoch + 1}: loss {total / args.samples:.4f}, "
            f"held-out exact {accuracy(model, test_x, test_y):.4f}, "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
    held_out = accuracy(model, test_x, test_y)
    export(model, args, held_out, time.monotonic() - started)


def export(model: nn.Module, args: argparse.Namespace, held_out: float, seconds: float) -> None:
    model.eval()
    path = args.out / f"{NAME}.onnx"
    torch.onnx.export(
        model,
        torch.zeros(1, 1, HEIGHT, WIDTH),
        str(path),
        input_names=["x"],
        output_names=["log_probs"],
        dynamic_axes={"x": {0: "N"}, "log_probs": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    manifest = {
        "name": NAME,
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "task": "region-code cell",
        "input_shape": ["N", 1, HEIGHT, WIDTH],
        "input_name": "x",
        "charset": (
            "per position (2): classes 0-9 the digit, 10 none (no digit there); log-probabilities"
        ),
        "notes": "Grey cut of the cell left of a UZ/KG plate's main glyphs, resized to 24x32, "
        "values 0-255 as float32 (the model normalises). Output (N, 2, 11).",
        "version": VERSION,
        "source": "this repository: models/training/train_cell.py",
        "licence": "Apache-2.0 (this project; trained from scratch, no third-party weights)",
        "training_data": (
            f"synthetic only (models/training/cell_data.py): {args.samples} samples, "
            f"seed {args.seed}, {args.epochs} epochs, {seconds / 60:.0f} min on 2 CPU cores"
        ),
        "metrics": {
            "synthetic_held_out_exact": round(held_out, 4),
            "see": "bench/recognition/RESULTS.md",
        },
    }
    (args.out / f"{NAME}.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB), held-out exact {held_out:.4f}")


if __name__ == "__main__":
    main()
