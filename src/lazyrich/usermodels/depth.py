"""Where a model's depth lives: its residual blocks and the branch outputs that write into the stream.

Blocks are found as the outermost `nn.ModuleList`/`nn.Sequential` whose members are one class with
equal parameter shapes (GPT-2's `transformer.h`, Llama's `model.layers`, a user's `blocks`), or named
with `blocks="path"`. In each block, a residual branch is a child module holding matrices (an
attention module, an MLP): its output is its last matrix module in registration order (c_proj,
o_proj, down_proj, out_proj; nn.MultiheadAttention as a whole). Consecutive bare matrix children form
one branch. Other layouts name their branch outputs with `branches=["*.attn.proj", ...]` (fnmatch on
module paths).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from ..errors import require
from .tensors import is_conv1d

_LISTS = (nn.ModuleList, nn.Sequential)
_LEAF_MODULES = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.LayerNorm, nn.MultiheadAttention)


def is_matrix_module(m: nn.Module) -> bool:
    """Modules whose output is a matrix product of their own weights (a branch can end in one)."""
    return isinstance(m, (nn.Linear, nn.modules.conv._ConvNd, nn.MultiheadAttention)) or is_conv1d(m)


def _uniform(lst: nn.Module) -> bool:
    kids = list(lst.children())
    if not kids or len({type(k) for k in kids}) != 1 or isinstance(kids[0], _LEAF_MODULES) or is_conv1d(kids[0]):
        return False
    shapes = [[tuple(p.shape) for p in k.parameters()] for k in kids]
    return bool(shapes[0]) and all(s == shapes[0] for s in shapes)


def find_blocks(model: nn.Module, blocks: str | None = None) -> str | None:
    """Path of the list of residual blocks (None when there is none and none was named)."""
    modules = dict(model.named_modules())
    if blocks is not None:
        require(blocks in modules and isinstance(modules[blocks], _LISTS),
                f"blocks={blocks!r} is not an nn.ModuleList/nn.Sequential of this model: name the list holding the residual blocks")
        return blocks
    found: list[str] = []
    for path, m in modules.items():
        if isinstance(m, _LISTS) and _uniform(m) and not any(path.startswith(f + ".") for f in found):
            found.append(path)
    require(len(found) <= 1, f"found several lists of repeated blocks ({', '.join(found)}): say which holds the residual "
                             "blocks with blocks='path'")
    return found[0] if found else None


def count(model: nn.Module, path: str) -> int:
    m = dict(model.named_modules()).get(path)
    require(m is not None and isinstance(m, _LISTS),
            f"the base model has no block list {path!r}: build the base with the same class, only narrower or shallower")
    return len(m)


def _last_matrix(module: nn.Module, prefix: str) -> str | None:
    if is_matrix_module(module):
        return prefix
    last = None
    for name, child in module.named_children():
        hit = _last_matrix(child, f"{prefix}.{name}" if prefix else name)
        last = hit or last
    return last


def branch_outputs(block: nn.Module) -> list[str]:
    """Paths (inside one block) of the modules whose outputs are the residual branches' outputs."""
    out: list[str] = []
    run: str | None = None
    for name, child in block.named_children():
        if is_matrix_module(child):
            run = name  # consecutive bare matrices: one branch, its last
            continue
        last = _last_matrix(child, name)
        if last is not None:
            if run:
                out.append(run)
                run = None
            out.append(last)
    if run:
        out.append(run)
    return out


@dataclass(frozen=True)
class Depth:
    """The residual structure of one model: block list path, block count and branch-output paths."""

    blocks: str
    n_blocks: int
    branches: tuple[str, ...]

    def inside(self, name: str) -> bool:
        return name.startswith(self.blocks + ".") if self.blocks else True

    def canon(self, name: str) -> str:
        """The name with the block index replaced by 0 (block k of a deep model ↔ block 0 of the base)."""
        if not self.inside(name):
            return name
        rest = name[len(self.blocks) + 1:] if self.blocks else name
        return (f"{self.blocks}." if self.blocks else "") + re.sub(r"^\d+", "0", rest)


def structure(model: nn.Module, blocks: str | None = None, branches: list[str] | tuple[str, ...] | None = None) -> Depth:
    """The model's `Depth`; a clear error when it has no repeated blocks or no branch outputs."""
    path = find_blocks(model, blocks)
    require(path is not None, f"{type(model).__name__} has no repeated residual blocks (an nn.ModuleList of identical "
                              "modules) for a depth scheme: name them with blocks='path', or drop depth=")
    modules = dict(model.named_modules())
    lst = modules[path]
    if branches:
        hits = [p for p in modules if any(fnmatch.fnmatchcase(p, pat) for pat in branches) and p.startswith(path + ".")]
        require(bool(hits), f"branches={list(branches)} match no module inside {path!r}: patterns look like '{path}.*.mlp.fc2'")
    else:
        hits = [f"{path}.{k}.{b}" for k, (_, blk) in enumerate(lst.named_children()) for b in branch_outputs(blk)]
        require(bool(hits), f"the blocks in {path!r} hold no Linear/Conv/attention module to scale: name the branch "
                            "outputs with branches=[...]")
    return Depth(path, len(lst), tuple(hits))
