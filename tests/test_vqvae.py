"""VQVAE3D: published key layout, token grouping, encode/decode, training pass."""

import json

import pytest
import torch

from backend.models.vqvae import VQVAE3D, VQVAEConfig, pixel_shuffle_3d

torch.set_num_threads(1)

SMALL = VQVAEConfig(channels=(8, 16, 32), num_res_blocks=1, num_res_blocks_middle=1)


def published_shapes() -> dict[str, tuple]:
    """The 149 published keys and shapes, written out from reference section 1 (not from our model)."""
    shapes = {}

    def res(prefix, c):
        for n in ("norm1", "norm2"):
            shapes[f"{prefix}.{n}.weight"] = (c,)
            shapes[f"{prefix}.{n}.bias"] = (c,)
        for n in ("conv1", "conv2"):
            shapes[f"{prefix}.{n}.weight"] = (c, c, 3, 3, 3)
            shapes[f"{prefix}.{n}.bias"] = (c,)

    def conv(prefix, cout, cin, k):
        shapes[f"{prefix}.weight"] = (cout, cin, k, k, k)
        shapes[f"{prefix}.bias"] = (cout,)

    conv("Encoder.input_layer", 32, 1, 3)
    res("Encoder.blocks.0", 32), res("Encoder.blocks.1", 32)
    conv("Encoder.blocks.2.conv", 128, 32, 2)
    res("Encoder.blocks.3", 128), res("Encoder.blocks.4", 128)
    conv("Encoder.blocks.5.conv", 512, 128, 2)
    res("Encoder.blocks.6", 512), res("Encoder.blocks.7", 512)
    res("Encoder.middle_block.0", 512), res("Encoder.middle_block.1", 512)
    shapes["Encoder.out_layer.0.weight"] = (512,)
    shapes["Encoder.out_layer.0.bias"] = (512,)
    conv("Encoder.out_layer.2", 16, 512, 3)
    conv("Decoder.input_layer", 512, 8, 3)
    res("Decoder.middle_block.0", 512), res("Decoder.middle_block.1", 512)
    res("Decoder.blocks.0", 512), res("Decoder.blocks.1", 512)
    conv("Decoder.blocks.2.conv", 1024, 512, 3)
    res("Decoder.blocks.3", 128), res("Decoder.blocks.4", 128)
    conv("Decoder.blocks.5.conv", 256, 128, 3)
    res("Decoder.blocks.6", 32), res("Decoder.blocks.7", 32)
    shapes["Decoder.out_layer.0.weight"] = (32,)
    shapes["Decoder.out_layer.0.bias"] = (32,)
    conv("Decoder.out_layer.2", 1, 32, 3)
    shapes["vq.embeddings.weight"] = (8192, 32)
    return shapes


def test_published_state_dict_loads_strict():
    expected = published_shapes()
    assert len(expected) == 149
    with torch.device("meta"):
        model = VQVAE3D(VQVAEConfig())
        published = {k: torch.empty(s) for k, s in expected.items()}
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected
    model.load_state_dict(published, strict=True, assign=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert 133.1e6 < n_params < 133.3e6


def test_strict_load_rejects_wrong_keys():
    with torch.device("meta"):
        model = VQVAE3D(VQVAEConfig())
        bad = {k: torch.empty(s) for k, s in published_shapes().items()}
        bad["encoder.input_layer.weight"] = bad.pop("Encoder.input_layer.weight")
    with pytest.raises(RuntimeError):
        model.load_state_dict(bad, strict=True, assign=True)


def test_token_count_is_1024_at_64():
    assert VQVAEConfig().num_tokens == 1024
    assert SMALL.num_tokens == 1024
    assert VQVAEConfig(resolution=32, channels=(8, 16, 32)).num_tokens == 128


def test_grouping_matches_reference_formula():
    model = VQVAE3D(SMALL)
    latent = torch.randn(2, 8, 16, 16, 16)
    tokens = model.latent_to_tokens(latent)
    assert tokens.shape == (2, 1024, 32)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        b, c, x, y, z = (int(torch.randint(n, (1,), generator=g)) for n in (2, 8, 16, 16, 16))
        assert tokens[b, 64 * x + 4 * y + z // 4, 8 * (z % 4) + c] == latent[b, c, x, y, z]
    assert torch.equal(model.tokens_to_latent(tokens), latent)


def test_encode_picks_nearest_code_of_grouped_mean():
    torch.manual_seed(0)
    model = VQVAE3D(SMALL).eval()
    occ = (torch.rand(1, 1, 64, 64, 64) > 0.8).float()
    codes = model.encode(occ)
    assert codes.dtype == torch.long and codes.shape == (1, 1024)
    with torch.no_grad():
        mean = model.Encoder(occ)[:, :8]  # the first 8 of 16 channels
    book = model.vq.embeddings.weight.detach()
    for x, y, zg in [(0, 0, 0), (3, 7, 2), (15, 15, 3), (9, 1, 1)]:
        vec = torch.cat([mean[0, :, x, y, 4 * zg + k] for k in range(4)])  # j = 8(z%4) + c
        nearest = int(((book - vec) ** 2).sum(1).argmin())
        assert int(codes[0, 64 * x + 4 * y + zg]) == nearest


def test_codes_logits_codes_deterministic():
    torch.manual_seed(1)
    model = VQVAE3D(SMALL).eval()
    codes = torch.randint(0, 8192, (1, 1024))
    logits_a = model.decode(codes)
    logits_b = model.decode(codes)
    assert logits_a.shape == (1, 1, 64, 64, 64)
    assert torch.equal(logits_a, logits_b)
    occ = (logits_a > 0).float()
    assert torch.equal(model.encode(occ), model.encode(occ))


def test_decode_rejects_bad_codes():
    model = VQVAE3D(SMALL)
    with pytest.raises(ValueError, match="1024"):
        model.decode(torch.zeros(1, 1000, dtype=torch.long))
    with pytest.raises(ValueError, match="8192"):
        model.decode(torch.full((1, 1024), 8192))
    with pytest.raises(ValueError, match="occupancy"):
        model.encode(torch.zeros(1, 1, 32, 32, 32))


def test_pixel_shuffle_places_channels_as_offsets():
    x = torch.arange(8.0).reshape(1, 8, 1, 1, 1)
    y = pixel_shuffle_3d(x, 2)
    for i in range(2):
        for j in range(2):
            for k in range(2):
                assert y[0, 0, i, j, k] == 4 * i + 2 * j + k


def test_forward_trains_encoder_and_codebook():
    torch.manual_seed(2)
    cfg = VQVAEConfig(resolution=32, channels=(8, 16, 32), num_res_blocks=1, num_res_blocks_middle=1)
    model = VQVAE3D(cfg)
    occ = (torch.rand(1, 1, 32, 32, 32) > 0.9).float()
    out = model(occ)
    assert out.logits.shape == occ.shape and out.codes.shape == (1, 128)
    assert torch.allclose(out.vq_loss, out.codebook_loss + 0.25 * out.commitment_loss)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, occ) + out.vq_loss
    loss.backward()
    # Straight-through: the reconstruction loss reaches the encoder's input layer.
    assert model.Encoder.input_layer.weight.grad.abs().sum() > 0
    assert model.vq.embeddings.weight.grad.abs().sum() > 0


def test_fp16_inner_blocks_keep_outer_layers_fp32():
    model = VQVAE3D(SMALL).set_inner_dtype(torch.float16)
    assert model.Encoder.blocks[0].conv1.weight.dtype == torch.float16
    assert model.Decoder.middle_block[0].conv2.weight.dtype == torch.float16
    assert model.Encoder.blocks[0].norm1.weight.dtype == torch.float32
    assert model.Encoder.input_layer.weight.dtype == torch.float32
    assert model.Decoder.out_layer[2].weight.dtype == torch.float32
    assert model.vq.embeddings.weight.dtype == torch.float32
    model.prepare("cpu")  # CPU inference is all fp32
    assert model.Encoder.blocks[0].conv1.weight.dtype == torch.float32


def test_config_round_trip(tmp_path):
    SMALL.save(tmp_path / "config.json")
    assert VQVAEConfig.load(tmp_path / "config.json") == SMALL
    assert json.loads((tmp_path / "config.json").read_text())["channels"] == [8, 16, 32]
    with pytest.raises(ValueError, match="code_dim"):
        VQVAEConfig(code_dim=16)
    with pytest.raises(ValueError, match="unknown"):
        VQVAEConfig.from_dict({"widths": [1]})


def test_fp16_inner_blocks_match_fp32_closely():
    # The CUDA path (fp16 convs inside blocks/middle_block) run here on the CPU at a small
    # size: no GPU on this machine. The output stays fp32 and close to the fp32 model's.
    cfg = VQVAEConfig(resolution=16, channels=(8, 16, 32), num_res_blocks=1, num_res_blocks_middle=1)
    torch.manual_seed(4)
    model = VQVAE3D(cfg).eval()
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    occ = (torch.rand(1, 1, 16, 16, 16) > 0.7).float()
    codes = torch.randint(0, 8192, (1, cfg.num_tokens))
    ref_logits, ref_latent = model.decode(codes), model.encode_latent(occ)
    model.set_inner_dtype(torch.float16)
    logits, latent = model.decode(codes), model.encode_latent(occ)
    assert logits.dtype == torch.float32 and latent.dtype == torch.float32
    assert (logits - ref_logits).abs().max() < 1e-2 * ref_logits.abs().max()
    assert (latent - ref_latent).abs().max() < 1e-2 * ref_latent.abs().max()
    assert not torch.equal(logits, ref_logits)  # it really ran in fp16
