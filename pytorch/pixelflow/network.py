"""The PixelFlow class-to-image transformer (PIXELFLOW.md section 2), with the official state-dict names.

Written for export as much as for eager use: every shape-dependent quantity (RoPE angles, the
stage-size embedding, unpatchify) is computed from the input's height and width, so one traced ONNX
graph serves every cascade stage. LayerNorm, RMSNorm and GELU are spelled out with elementary ops
because torch 1.13 writes an invalid LayerNorm node at opset 17 (shared/research/feasibility-mnist.md),
in exactly the forms onnxruntime's LayerNormFusion, SimplifiedLayerNormFusion and FastGeluFusion
match, so the graph stays standard ONNX and onnxruntime still runs each as one kernel (a test checks
the fused kernels in its profile). Eager runs (training, the reference sampler) use PyTorch's fused
kernels, which agree to float rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

EMBED_CHANNELS = 256
NORM_EPS = 1e-6


def sinusoidal_embedding(values: torch.Tensor, channels: int = EMBED_CHANNELS) -> torch.Tensor:
    """[cos(v f), sin(v f)] with f_i = exp(-ln(10000) i / (half - 1)); values (B,) -> (B, channels)."""
    half = channels // 2
    exponent = torch.arange(half, dtype=torch.float32, device=values.device) * (-math.log(10000.0) / (half - 1))
    angles = values.float()[:, None] * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def layer_norm(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis without affine parameters."""
    if not torch.onnx.is_in_onnx_export():  # the fused kernel trains several times faster
        return torch.nn.functional.layer_norm(x, x.shape[-1:], eps=NORM_EPS)
    # Written as onnxruntime's LayerNormFusion expects (Pow, and a constant scale and bias), so the
    # runtime turns these nodes into one LayerNormalization kernel.
    centred = x - x.mean(dim=-1, keepdim=True)
    normed = centred / torch.sqrt(torch.pow(centred, 2).mean(dim=-1, keepdim=True) + NORM_EPS)
    return normed * torch.ones(x.shape[-1], device=x.device) + torch.zeros(x.shape[-1], device=x.device)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    if not torch.onnx.is_in_onnx_export():
        return torch.nn.functional.gelu(x, approximate="tanh")
    # The form onnxruntime's FastGeluFusion expects, so the runtime runs one FastGelu kernel.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def unpatchify(tokens: torch.Tensor, batch, rows, cols, patch: int, channels: int) -> torch.Tensor:
    """(B, rows*cols, p*p*C) -> (B, C, rows*p, cols*p): token r*cols + c, entry (pi, pj, ch) lands at
    pixel (ch, r*p + pi, c*p + pj)."""
    out = tokens.reshape(batch, rows, cols, patch, patch, channels).permute(0, 5, 1, 3, 2, 4)
    return out.reshape(batch, channels, rows * patch, cols * patch)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, device=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.onnx.is_in_onnx_export():
            return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + NORM_EPS) * self.weight
        # The form onnxruntime's SimplifiedLayerNormFusion expects: one kernel at run time.
        return x / torch.sqrt(torch.pow(x, 2).mean(dim=-1, keepdim=True) + NORM_EPS) * self.weight


class EmbeddingMLP(nn.Module):
    """Linear(256, D), SiLU, Linear(D, D): used for the timestep and for the stage size."""

    def __init__(self, dim: int, device=None):
        super().__init__()
        self.linear_1 = nn.Linear(EMBED_CHANNELS, dim, device=device)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(dim, dim, device=device)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(embedding)))


class ClassEmbedder(nn.Module):
    def __init__(self, num_classes: int, dim: int, device=None):
        super().__init__()
        # One extra row: the null label used for classifier-free guidance.
        self.embedding_table = nn.Embedding(num_classes + 1, dim, device=device)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels)


class PatchEmbed(nn.Module):
    def __init__(self, channels: int, dim: int, patch: int, device=None):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, D, H/p, W/p) -> (B, N, D), tokens row-major over the grid.
        return self.proj(x).flatten(2).transpose(1, 2)


def rope_angles(rows: torch.Tensor, cols: torch.Tensor, head_dim: int, device=None) -> torch.Tensor:
    """(N, head_dim) rotation angles for a rows x cols token grid.

    The first head_dim/2 channels rotate by the column index and the last head_dim/2 by the row
    index; within each half, channels (2k, 2k+1) share frequency 1 / 10000^(2k / (head_dim/2)).
    `rows` and `cols` are 0-dim tensors so that tracing keeps them tied to the input's shape.
    """
    axis_dim = head_dim // 2
    k = torch.arange(axis_dim // 2, dtype=torch.float32, device=device)
    freqs = torch.pow(10000.0, -2.0 * k / axis_dim).repeat_interleave(2)  # (axis_dim,)
    row_pos = torch.arange(rows, device=device).float()
    col_pos = torch.arange(cols, device=device).float()
    # Token n = r * cols + c.
    row_of_token = row_pos[:, None].expand(-1, cols).reshape(-1)
    col_of_token = col_pos[None, :].expand(rows, -1).reshape(-1)
    return torch.cat([col_of_token[:, None] * freqs[None, :], row_of_token[:, None] * freqs[None, :]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin); x is (B, heads, N, d)."""
    pairs = x.reshape(x.shape[0], x.shape[1], x.shape[2], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([-x1, x0], dim=-1).reshape(x.shape)
    return x * cos + rotated * sin


ATTENTION_EXPORTS = ("plain", "multihead")
"""How attention is written into an ONNX export: MatMul + Softmax + MatMul ("plain", any runtime),
or one com.microsoft.MultiHeadAttention node ("multihead"), onnxruntime's fused kernel (flash and
memory-efficient attention on CUDA) that never holds the N x N scores."""


class _MultiHeadAttentionNode(torch.autograd.Function):
    """Exports as com.microsoft.MultiHeadAttention over (B, N, heads * head_dim) inputs; computes the
    same attention in PyTorch (it only runs there while the exporter traces)."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
        split = [t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v)]
        out = attention(*split, q.shape[-1] // heads).transpose(1, 2)
        return out.reshape(q.shape)

    @staticmethod
    def symbolic(g, q, k, v, heads: int):
        # The default scale, 1 / sqrt(head_dim), is the model's.
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads)
        out.setType(q.type())
        return out


class Attention(nn.Module):
    def __init__(self, heads: int, head_dim: int, device=None):
        super().__init__()
        dim = heads * head_dim
        self.heads = heads
        self.head_dim = head_dim
        # Read only by the ONNX export (see ATTENTION_EXPORTS); PyTorch always computes `attention`.
        self.onnx_attention = "plain"
        self.q_proj = nn.Linear(dim, dim, device=device)
        self.k_proj = nn.Linear(dim, dim, device=device)
        self.v_proj = nn.Linear(dim, dim, device=device)
        self.o_proj = nn.Linear(dim, dim, device=device)
        self.q_norm = RMSNorm(dim, device=device)
        self.k_norm = RMSNorm(dim, device=device)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        q = apply_rope(self._split_heads(self.q_norm(self.q_proj(x))), cos, sin)
        k = apply_rope(self._split_heads(self.k_norm(self.k_proj(x))), cos, sin)
        v = self._split_heads(self.v_proj(x))
        if self.onnx_attention == "multihead" and torch.onnx.is_in_onnx_export():
            merged = [t.transpose(1, 2).reshape(x.shape) for t in (q, k, v)]  # RoPE is applied per head first
            return self.o_proj(_MultiHeadAttentionNode.apply(*merged, self.heads))
        out = attention(q, k, v, self.head_dim).transpose(1, 2)
        return self.o_proj(out.reshape(out.shape[0], out.shape[1], -1))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, head_dim: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) v over (B, heads, N, head_dim).

    PyTorch 2.x runs it fused (F.scaled_dot_product_attention, as the authors' code does), which at
    256 px (4,096 tokens) never holds the N x N scores. The ONNX export and PyTorch 1.13 take the
    plain form, which exports to any opset >= 17; both compute the same function.
    """
    fused = getattr(F, "scaled_dot_product_attention", None)
    if fused is not None and not torch.onnx.is_in_onnx_export():
        return fused(q, k, v)
    weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_dim), dim=-1)
    return torch.matmul(weights, v)


class MLP(nn.Module):
    def __init__(self, dim: int, device=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim, device=device)
        self.fc2 = nn.Linear(4 * dim, dim, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_tanh(self.fc1(x)))


class AdaLNModulation(nn.Module):
    def __init__(self, dim: int, chunks: int, device=None):
        super().__init__()
        self.chunks = chunks
        self.act = nn.SiLU()
        self.linear = nn.Linear(dim, chunks * dim, device=device)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.linear(self.act(c)).unsqueeze(1).chunk(self.chunks, dim=-1)


class TransformerBlock(nn.Module):
    def __init__(self, heads: int, head_dim: int, device=None):
        super().__init__()
        dim = heads * head_dim
        self.norm1 = AdaLNModulation(dim, 6, device=device)
        self.attn1 = Attention(heads, head_dim, device=device)
        self.norm3 = RMSNorm(dim, device=device)
        self.mlp = MLP(dim, device=device)

    def forward(self, h: torch.Tensor, c: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.norm1(c)
        h = h + gate1 * self.attn1(layer_norm(h) * (1 + scale1) + shift1, cos, sin)
        return h + gate2 * self.mlp(self.norm3(h) * (1 + scale2) + shift2)


class PixelFlowNet(nn.Module):
    """velocity = net(x (B,C,H,W), timestep (B,) in [0, 1000), class_labels (B,) int64)."""

    def __init__(self, config: ModelConfig, device=None):
        super().__init__()
        self.config = config
        dim = config.hidden_size
        p = config.patch_size
        self.patch_embed = PatchEmbed(config.in_channels, dim, p, device=device)
        self.timestep_embedder = EmbeddingMLP(dim, device=device)
        self.latent_size_embedder = EmbeddingMLP(dim, device=device)
        self.class_embedder = ClassEmbedder(config.num_classes, dim, device=device)
        self.transformer_blocks = nn.ModuleList(
            TransformerBlock(config.num_attention_heads, config.attention_head_dim, device=device)
            for _ in range(config.depth))
        self.proj_out_1 = nn.Linear(dim, 2 * dim, device=device)
        self.proj_out_2 = nn.Linear(dim, p * p * config.out_channels, device=device)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        batch, height, width = x.shape[0], x.shape[2], x.shape[3]
        rows, cols = height // p, width // p
        # The stage is told by its grid width g = W / p, embedded like a timestep. Built by tensor
        # arithmetic so that the traced graph reads it from the input's width instead of a constant.
        stage_size = torch.zeros(1, dtype=torch.float32, device=x.device) + cols
        c = (self.timestep_embedder(sinusoidal_embedding(timestep))
             + self.class_embedder(class_labels)
             + self.latent_size_embedder(sinusoidal_embedding(stage_size)))

        angles = rope_angles(rows, cols, self.config.attention_head_dim, device=x.device)
        cos, sin = torch.cos(angles), torch.sin(angles)

        h = self.patch_embed(x)
        for block in self.transformer_blocks:
            h = block(h, c, cos, sin)

        shift, scale = self.proj_out_1(torch.nn.functional.silu(c)).unsqueeze(1).chunk(2, dim=-1)
        out = self.proj_out_2(layer_norm(h) * (1 + scale) + shift)
        return unpatchify(out, batch, rows, cols, p, self.config.out_channels)

    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.state_dict().values())
