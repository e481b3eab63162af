"""Where the benchmarks find what the repository does not ship: ../shared/ beside the repository.

    ../shared/data/cifar10n_20k.npz   20,000 CIFAR-10 training images with CIFAR-10N human labels
    ../shared/data/imagenette_2k/     2,000 Imagenette photos (224 px) with ImageNet and synthetic noisy labels
    ../shared/data/mnist_train_5k.npz 5,000 MNIST training digits (28 px grayscale) with their own labels
    ../shared/weights/                ImageNet weights (<arch>.<tag>.safetensors) for the cpu profile's members

The benchmarks pass the weights folder as `weights_dir` (the CLI's --weights-dir); a user's
own weights folder, or timm's hub, serves the same purpose outside the benchmarks.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar10n_20k.npz"
MNIST = SHARED / "data" / "mnist_train_5k.npz"  # 5,000 real handwritten digits, 28 px, MNIST's own labels
IMAGENETTE = SHARED / "data" / "imagenette_2k"  # 2,000 photos at 224 px: images/<wnid>/, labels.csv
WEIGHTS = SHARED / "weights"


def config_name(config: str) -> str:
    """A profile name as it is, a YAML path made absolute (children run in other directories)."""
    path = Path(config)
    return str(path.resolve()) if path.suffix in (".yaml", ".yml") or path.is_file() else config
