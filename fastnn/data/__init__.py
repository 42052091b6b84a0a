"""Data: MNIST (``mnist``), mini-batches (``batches``) and augmentation (``augment``).

Every public name is importable from here (``from fastnn.data import load_mnist``) and,
for code written against earlier versions, from ``fastnn.datasets``.
"""
from .augment import affine_params, augment_batch
from .batches import BatchIterator, iterate_minibatches, train_val_split
from .mnist import (FILES, GZ_HASHES, MD5, MIRRORS, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES,
                    TRAIN_LABELS, cache_dir, download_mnist, find_mnist, load_mnist,
                    partial_folders, read_idx, search_dirs)

__all__ = ["load_mnist", "download_mnist", "find_mnist", "partial_folders", "read_idx",
           "search_dirs", "cache_dir", "iterate_minibatches", "BatchIterator", "train_val_split",
           "augment_batch", "affine_params", "MIRRORS", "MD5", "GZ_HASHES", "FILES",
           "TRAIN_IMAGES", "TRAIN_LABELS", "TEST_IMAGES", "TEST_LABELS"]
