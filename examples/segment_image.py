"""Colour image segmentation: mean shift on pixels in colour space (optionally with position).

Uses the photograph matplotlib ships (Grace Hopper), so nothing is downloaded.

    python examples/segment_image.py [OUTPUT.png] [--with-position] [--scale 0.5]
                                     [--algorithm grid]
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import cbook

import dshift


def load_image(scale: float) -> np.ndarray:
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        img = plt.imread(f).astype(np.float64) / 255.0
    step = max(1, round(1 / scale))
    return img[::step, ::step, :3]


def segment(img: np.ndarray, bandwidth: float, with_position: bool, algorithm: str = "exact"):
    h, w, _ = img.shape
    features = img.reshape(-1, 3)
    if with_position:  # position scaled so one bandwidth spans ~1/10 of the image
        yy, xx = np.mgrid[0:h, 0:w]
        pos = np.stack([yy.ravel(), xx.ravel()], axis=1) / max(h, w) * (bandwidth * 10)
        features = np.hstack([features, pos])
    model = dshift.MeanShift(
        bandwidth=bandwidth, kernel="flat", seeding="bin", min_bin_freq=20, algorithm=algorithm
    )
    labels = model.fit_predict(features)
    palette = model.cluster_centers_[:, :3]
    return palette[labels].reshape(h, w, 3), model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="segmented.png")
    parser.add_argument("--with-position", action="store_true")
    parser.add_argument("--scale", type=float, default=0.5, help="downsampling of the image")
    parser.add_argument("--bandwidth", type=float, default=0.1)
    parser.add_argument(
        "--algorithm", choices=["exact", "grid"], default="exact", help="grid: faster, approximate"
    )
    args = parser.parse_args(argv)
    img = load_image(args.scale)
    out, model = segment(img, args.bandwidth, args.with_position, args.algorithm)
    fig, axes = plt.subplots(1, 2, figsize=(10, 6))
    axes[0].imshow(img)
    axes[0].set_title(f"original ({img.shape[1]}x{img.shape[0]})")
    axes[1].imshow(np.clip(out, 0, 1))
    axes[1].set_title(f"{len(model.cluster_centers_)} segments, {model.n_iter_} iterations")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(f"{len(model.cluster_centers_)} colour segments; wrote {args.output}")
    return model


if __name__ == "__main__":
    main()
