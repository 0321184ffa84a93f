"""The network's structure against PIXELFLOW.md section 2, independently of how network.py builds it."""

import math

import torch

from pixelflow.config import XL
from pixelflow.network import PixelFlowNet, apply_rope, attention, rope_angles, sinusoidal_embedding, unpatchify


def official_xl_shapes() -> dict[str, tuple[int, ...]]:
    """The XL state dict written out from the spec's table (D = 1152, p = 4, C = 3, 1000 classes)."""
    d, p, c, classes = 1152, 4, 3, 1000
    shapes = {
        "patch_embed.proj.weight": (d, c, p, p), "patch_embed.proj.bias": (d,),
        "class_embedder.embedding_table.weight": (classes + 1, d),
        "proj_out_1.weight": (2 * d, d), "proj_out_1.bias": (2 * d,),
        "proj_out_2.weight": (p * p * c, d), "proj_out_2.bias": (p * p * c,),
    }
    for mlp in ("timestep_embedder", "latent_size_embedder"):
        shapes.update({f"{mlp}.linear_1.weight": (d, 256), f"{mlp}.linear_1.bias": (d,),
                       f"{mlp}.linear_2.weight": (d, d), f"{mlp}.linear_2.bias": (d,)})
    for i in range(28):
        b = f"transformer_blocks.{i}."
        shapes.update({b + "norm1.linear.weight": (6 * d, d), b + "norm1.linear.bias": (6 * d,),
                       b + "attn1.q_norm.weight": (d,), b + "attn1.k_norm.weight": (d,),
                       b + "norm3.weight": (d,),
                       b + "mlp.fc1.weight": (4 * d, d), b + "mlp.fc1.bias": (4 * d,),
                       b + "mlp.fc2.weight": (d, 4 * d), b + "mlp.fc2.bias": (d,)})
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes.update({b + f"attn1.{proj}.weight": (d, d), b + f"attn1.{proj}.bias": (d,)})
    return shapes


def test_xl_has_exactly_the_official_names_and_shapes_without_allocating():
    model = PixelFlowNet(XL, device="meta")
    state = model.state_dict()
    assert all(t.is_meta for t in state.values())
    assert {k: tuple(v.shape) for k, v in state.items()} == official_xl_shapes()
    assert len(state) == 491
    assert sum(t.numel() for t in state.values()) == 676_611_120


def test_sinusoidal_embedding_is_cosines_first_with_divisor_half_minus_one():
    e = sinusoidal_embedding(torch.tensor([3.0]))[0]
    i = 5
    f = math.exp(-math.log(10000.0) * i / 127)
    assert e.shape == (256,)
    assert abs(e[i].item() - math.cos(3.0 * f)) < 1e-6
    assert abs(e[128 + i].item() - math.sin(3.0 * f)) < 1e-6


def test_rope_rotates_first_half_by_column_and_second_half_by_row():
    head_dim, rows, cols = 8, 3, 4
    angles = rope_angles(rows, cols, head_dim)
    token = 2 * cols + 1  # row 2, column 1
    w = [1.0, 1.0 / 100.0]  # 1 / 10000^(2k / (head_dim/2)) for k = 0, 1
    expected = [1 * w[0], 1 * w[0], 1 * w[1], 1 * w[1], 2 * w[0], 2 * w[0], 2 * w[1], 2 * w[1]]
    assert torch.allclose(angles[token], torch.tensor(expected), atol=1e-7)
    # (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) on each channel pair
    x = torch.arange(1.0, 9.0).reshape(1, 1, 1, 8)
    a = torch.full((1, 8), 0.3)
    out = apply_rope(x, torch.cos(a), torch.sin(a))[0, 0, 0]
    c, s = math.cos(0.3), math.sin(0.3)
    assert abs(out[0].item() - (1 * c - 2 * s)) < 1e-6
    assert abs(out[1].item() - (2 * c + 1 * s)) < 1e-6


def test_forward_shapes_every_stage_and_batch(small_config):
    torch.manual_seed(0)
    model = PixelFlowNet(small_config).eval()
    for side in small_config.stage_resolutions():
        for batch in (1, 3):
            x = torch.randn(batch, 3, side, side)
            with torch.no_grad():
                v = model(x, torch.full((batch,), 10.0), torch.zeros(batch, dtype=torch.int64))
            assert v.shape == x.shape and torch.isfinite(v).all()


def test_unpatchify_puts_each_token_entry_at_its_pixel():
    rows, cols, p, c = 2, 3, 2, 3
    tokens = torch.arange(rows * cols * p * p * c, dtype=torch.float32).reshape(1, rows * cols, p * p * c)
    image = unpatchify(tokens, 1, rows, cols, p, c)
    assert image.shape == (1, c, rows * p, cols * p)
    for r in range(rows):
        for col in range(cols):
            for pi in range(p):
                for pj in range(p):
                    for ch in range(c):
                        value = tokens[0, r * cols + col, (pi * p + pj) * c + ch]
                        assert image[0, ch, r * p + pi, col * p + pj] == value


def test_fused_and_plain_attention_agree():
    # PyTorch 2.x takes the fused kernel outside an ONNX export; 1.13 and the export take the plain
    # form. Whichever this torch takes must equal the plain formula.
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 16, 8, generator=generator) for _ in range(3))
    plain = torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(8), dim=-1), v)
    assert torch.allclose(attention(q, k, v, 8), plain, atol=1e-6)
