"""Backbones, heads, the hashing network, hash layers and complexity counters."""
from __future__ import annotations

import math

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from brcd_lib.models import (HashingNetwork, backbone_info, bihalf, bihalf_codes,
                             build_hashing_network, count_flops, count_parameters, create_backbone,
                             create_head, default_head, list_backbones, sign_pm1, sign_ste)

torch.set_num_threads(1)

PAPER_DIMS = {"vit_b_16": 768, "vit_b_32": 768, "vit_l_16": 1024, "efficientnet_b0": 1000,
              "efficientnet_b1": 1000, "efficientnet_b2": 1000, "efficientnet_b3": 1000,
              "mobilenet_v2": 1000, "resnet18": 512, "resnet34": 512, "resnet50": 2048,
              "resnet101": 2048, "resnet152": 2048}
SMALL = ("small_cnn_s", "small_cnn_m", "cnn_teacher", "small_vit", "resnet_teacher")


# --------------------------------------------------------------------------------------------
# registry walk
# --------------------------------------------------------------------------------------------
def test_registry_lists_paper_and_cpu_backbones():
    names = set(list_backbones())
    assert set(PAPER_DIMS) | set(SMALL) <= names


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_builds_and_runs_on_meta(name):
    """Every entry builds with pretrained=False; a meta-device forward checks the output shape at
    the backbone's natural resolution without allocating weights."""
    side = 224 if name in PAPER_DIMS else 16
    with torch.device("meta"):
        model = create_backbone(name)
        out = model(torch.empty(2, 3, side, side))
    assert out.shape == (2, model.out_dim)
    assert model.family == backbone_info(name)["family"]
    assert model.spec == {"name": name, "kwargs": {}}
    if name in PAPER_DIMS:
        assert model.out_dim == PAPER_DIMS[name]


@pytest.mark.parametrize("name,kw,side", [
    ("resnet18", {}, 32), ("mobilenet_v2", {}, 32), ("efficientnet_b0", {}, 32),
    ("vit_b_32", {"image_size": 32}, 32),
])
def test_cheap_paper_backbones_forward_on_small_images(name, kw, side):
    torch.manual_seed(0)
    model = create_backbone(name, **kw).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, side, side))
    assert out.shape == (2, PAPER_DIMS[name]) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("side", [8, 16, 32])
def test_small_backbones_accept_8_to_32_pixels(name, side):
    torch.manual_seed(0)
    model = create_backbone(name).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, side, side))
    assert out.shape == (3, model.out_dim) and torch.isfinite(out).all()


def test_small_backbone_errors():
    with pytest.raises(ValueError, match="no ImageNet weights"):
        create_backbone("small_cnn_s", pretrained=True)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        create_backbone("small_cnn_s")(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match="multiple of 4"):
        create_backbone("small_vit")(torch.randn(2, 3, 10, 10))
    with pytest.raises(ValueError, match="width"):
        create_backbone("small_cnn_s", width=0)


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: .*resnet18"):
        create_backbone("resnet9000")


def test_registered_sizes_have_documented_dims():
    assert create_backbone("small_cnn_s").out_dim == 16 * 4
    assert create_backbone("small_cnn_m").out_dim == 32 * 4
    assert create_backbone("cnn_teacher").out_dim == 32 * 4 * 2 * 2  # 128 channels x 2x2 grid
    assert create_backbone("small_vit").out_dim == 128
    assert create_backbone("small_cnn_s", pool_grid=3).out_dim == 64 * 9
    assert create_backbone("small_cnn_s", width=8, depth=2).out_dim == 8 * 2
    assert create_backbone("small_vit", dim=64, heads=2, depth=1).out_dim == 64
    assert create_backbone("resnet_teacher").out_dim == 256 * 2 * 2  # 256 channels x 2x2 grid
    assert create_backbone("resnet_teacher", pool_grid=1).out_dim == 256
    assert create_backbone("resnet_teacher", widths=(8, 16), blocks=(1, 2)).out_dim == 16 * 4


def test_small_resnet_structure_and_errors():
    from brcd_lib.models.small import SmallResNet

    net = create_backbone("resnet_teacher", widths=(4, 8, 16), blocks=(1, 2, 1), pool_grid=1)
    assert isinstance(net, SmallResNet) and net.family == "small_resnet"
    assert [len(stage) for stage in net.stages] == [1, 2, 1]
    # stride-2 first block of every stage after the first: 28 -> 28 -> 14 -> 7
    x = torch.randn(2, 3, 28, 28)
    sizes = []
    h = net.stem(x)
    for stage in net.stages:
        h = stage(h)
        sizes.append(h.shape[-1])
    assert sizes == [28, 14, 7]
    with pytest.raises(ValueError, match="same non-zero length"):
        create_backbone("resnet_teacher", widths=(8, 16), blocks=(1,))
    with pytest.raises(ValueError, match=r"widths\[1\]"):
        create_backbone("resnet_teacher", widths=(8, 0), blocks=(1, 1))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.randn(2, 1, 16, 16))
    # the family's default head is linear, as the paper's ViT teacher's
    hn = build_hashing_network(role="teacher", backbone="resnet_teacher", code_length=8)
    assert isinstance(hn.head, nn.Linear) and hn.head.in_features == 1024


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------
def test_pretrained_download_failure_is_explained(monkeypatch):
    def offline(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="weights_path"):
        create_backbone("resnet18", pretrained=True)


def test_pretrained_and_weights_path_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        create_backbone("resnet18", pretrained=True, weights_path=str(tmp_path / "w.pth"))


def test_weights_path_loads_torchvision_file_and_wrapper_file(tmp_path):
    torch.manual_seed(1)
    raw = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(raw.state_dict(), path)
    model = create_backbone("resnet18", weights_path=str(path)).eval()
    x = torch.randn(2, 3, 32, 32)
    raw.fc = nn.Identity()
    with torch.no_grad():
        assert torch.allclose(model(x), raw(x))
    wrapper_path = tmp_path / "wrapper.pth"
    torch.save(model.state_dict(), wrapper_path)
    again = create_backbone("resnet18", weights_path=str(wrapper_path)).eval()
    with torch.no_grad():
        assert torch.allclose(again(x), raw(x))


def test_weights_path_mismatch_names_keys(tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"not_a_layer.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="unexpected keys .*not_a_layer.weight"):
        create_backbone("small_cnn_s", weights_path=str(path))
    with pytest.raises(ValueError, match="missing keys .*bn1.bias"):
        create_backbone("resnet18", weights_path=str(path))
    with pytest.raises(FileNotFoundError):
        create_backbone("small_cnn_s", weights_path=str(tmp_path / "absent.pth"))


def test_small_backbone_weights_roundtrip(tmp_path):
    torch.manual_seed(0)
    a = create_backbone("small_cnn_s").eval()
    path = tmp_path / "s.pth"
    torch.save(a.state_dict(), path)
    torch.manual_seed(99)
    b = create_backbone("small_cnn_s", weights_path=str(path)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# --------------------------------------------------------------------------------------------
# heads and the hashing network
# --------------------------------------------------------------------------------------------
def test_heads_shapes_and_defaults():
    lin = create_head("linear", in_dim=7, code_length=5)
    assert isinstance(lin, nn.Linear) and (lin.in_features, lin.out_features) == (7, 5)
    mlp = create_head("mlp", in_dim=7, code_length=5)
    dims = [(m.in_features, m.out_features) for m in mlp if isinstance(m, nn.Linear)]
    assert dims == [(7, 1000), (1000, 5)] and isinstance(mlp[1], nn.ReLU)
    assert [m.out_features for m in create_head("mlp", in_dim=7, code_length=5, hidden=9)
            if isinstance(m, nn.Linear)] == [9, 5]
    assert (default_head("vit"), default_head("imagenet_logits"), default_head("resnet")) == (
        "linear", "mlp", "linear")
    with pytest.raises(ValueError, match="valid names: linear, mlp"):
        create_head("transformer", in_dim=7, code_length=5)
    with pytest.raises(ValueError, match="no hidden layer"):
        create_head("linear", in_dim=7, code_length=5, hidden=10)
    with pytest.raises(ValueError, match="known families"):
        default_head("no_such_family")


@pytest.mark.parametrize("backbone,expected", [
    ("vit_b_16", [(768, 16)]), ("efficientnet_b0", [(1000, 1000), (1000, 16)]),
    ("mobilenet_v2", [(1000, 1000), (1000, 16)]), ("resnet50", [(2048, 16)]),
])
def test_paper_heads_follow_method_md(backbone, expected):
    with torch.device("meta"):
        net = build_hashing_network(role="student", backbone=backbone, code_length=16)
    assert [(m.in_features, m.out_features) for m in net.head.modules()
            if isinstance(m, nn.Linear)] == expected
    assert net.code_length == 16


def test_head_override_and_hidden():
    net = build_hashing_network(role="teacher", backbone="small_cnn_s", code_length=8,
                                head="mlp", head_hidden=12)
    assert [m.out_features for m in net.head if isinstance(m, nn.Linear)] == [12, 8]
    net = build_hashing_network(role="teacher", backbone="small_cnn_s", code_length=8, head="linear")
    assert isinstance(net.head, nn.Linear)


@pytest.mark.parametrize("bad", [0, -3, 16.0, True, "16", None])
def test_code_length_is_validated(bad):
    with pytest.raises(ValueError, match="code_length"):
        build_hashing_network(role="teacher", backbone="small_cnn_s", code_length=bad)


def test_role_is_validated():
    with pytest.raises(ValueError, match="role"):
        build_hashing_network(role="assistant", backbone="small_cnn_s", code_length=8)


def test_frozen_backbone_stays_in_eval_mode_and_gets_no_gradient():
    torch.manual_seed(0)
    net = build_hashing_network(role="student", backbone="small_cnn_s", code_length=8)
    bn = next(m for m in net.backbone.modules() if isinstance(m, nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    net.train()
    assert net.head.training and not net.backbone.training and not bn.training
    x = torch.randn(4, 3, 16, 16)
    logits = net(x)
    assert torch.equal(bn.running_mean, stats)  # eval-mode BN does not update its statistics
    logits.sum().backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert all(p.grad is not None for p in net.head.parameters())
    assert not net.features(x).requires_grad
    assert {id(p) for p in net.trainable_parameters()} == {id(p) for p in net.head.parameters()}
    assert torch.allclose(net.head_forward(net.features(x)), net(x))


def test_unfrozen_backbone_trains():
    torch.manual_seed(0)
    net = build_hashing_network(role="student", backbone="small_cnn_s", code_length=8,
                                freeze_backbone=False)
    net.train()
    assert net.backbone.training
    net(torch.randn(4, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in net.backbone.parameters())
    assert count_parameters(net, trainable_only=True) == count_parameters(net)


def test_encode_gives_pm1_with_sign_zero_positive():
    net = build_hashing_network(role="teacher", backbone="small_cnn_s", code_length=6, head="linear")
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.0, 2.0, -0.5]))
    codes = net.encode(torch.randn(3, 3, 16, 16))
    assert not codes.requires_grad
    assert codes.tolist() == [[1.0, 1.0, -1.0, 1.0, 1.0, -1.0]] * 3


def test_hashing_network_direct_construction():
    net = HashingNetwork(backbone=create_backbone("small_cnn_s"), head=nn.Linear(64, 5),
                         freeze_backbone=True)
    assert net.code_length == 5
    with pytest.raises(ValueError, match="code length"):
        HashingNetwork(backbone=create_backbone("small_cnn_s"), head=nn.ReLU())


# --------------------------------------------------------------------------------------------
# hash layers
# --------------------------------------------------------------------------------------------
def test_sign_pm1_zero_is_plus_one():
    assert sign_pm1(torch.tensor([-2.0, -0.0, 0.0, 3.0])).tolist() == [-1.0, 1.0, 1.0, 1.0]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=1, max_size=12),
       st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=12, max_size=12))
def test_sign_ste_forward_sign_backward_identity(values, upstream):
    x = torch.tensor(values, requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [1.0 if v >= 0 else -1.0 for v in values]
    g = torch.tensor(upstream[:len(values)])
    y.backward(g)
    assert torch.equal(x.grad, g)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 9), st.integers(1, 5), st.integers(0, 10_000))
def test_bihalf_half_plus_half_minus_per_bit(n, bits, seed):
    u = torch.randn(n, bits, generator=torch.Generator().manual_seed(seed))
    b = bihalf_codes(u)
    for j in range(bits):
        col = u[:, j].tolist()
        top = sorted(range(n), key=lambda i: -col[i])[: n // 2]  # plain ranking
        expected = [1.0 if i in top else -1.0 for i in range(n)]
        assert b[:, j].tolist() == expected
    assert (b == 1).sum(0).tolist() == [n // 2] * bits


def test_bihalf_gradient_matches_released_formula():
    u = torch.tensor([[0.3, -1.0], [0.1, 2.0], [-0.4, 0.5], [0.9, 0.0]], requires_grad=True)
    b = bihalf(u, gamma=6.0)
    g = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    b.backward(g)
    codes = [[1, -1], [-1, 1], [-1, 1], [1, -1]]
    for i in range(4):
        for j in range(2):
            expected = g[i, j].item() + 6.0 * (u[i, j].item() - codes[i][j]) / 8
            assert math.isclose(u.grad[i, j].item(), expected, rel_tol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        bihalf_codes(torch.zeros(1, 3))


# --------------------------------------------------------------------------------------------
# complexity
# --------------------------------------------------------------------------------------------
def test_count_parameters_by_hand():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2
    model[0].weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4 + 4 * 2
    shared = nn.Linear(2, 2)
    assert count_parameters(nn.Sequential(shared, shared)) == 6


def test_count_flops_by_hand():
    """FLOPs are multiply-adds (one per multiply-add)."""
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False))
    assert count_flops(conv, (3, 5, 5)) == (8 * 5 * 5) * (3 * 3 * 3)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    lin.train()
    assert count_flops(lin, (3, 4, 4)) == 48 * 5
    assert lin.training  # mode restored
    assert count_flops(lin, 4) == 48 * 5  # int side means 3 x side x side
    with pytest.raises(ValueError, match="input_size"):
        count_flops(lin, (4, 4))


def test_small_vit_flops_include_attention_blocks():
    vit = create_backbone("small_vit", dim=32, depth=1, heads=2, mlp_ratio=2.0)
    tokens, dim = 1 + 16, 32
    patch = 16 * 32 * (3 * 4 * 4)
    block = tokens * dim * (3 * dim) + tokens * dim * dim + 2 * tokens * dim * 2 * dim
    attention = 2 * tokens * tokens * dim  # Q K^T and P V over all heads
    assert count_flops(vit, (3, 16, 16)) == patch + block + attention


def test_bf16_backbone_and_channels_last_keep_float32_features():
    from brcd_lib.models import build_hashing_network

    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    ref = build_hashing_network(role="student", backbone="resnet18", code_length=16)
    fast = build_hashing_network(role="student", backbone="resnet18", code_length=16,
                                 backbone_precision="bf16", channels_last=True)
    fast.load_state_dict(ref.state_dict())
    a, b = ref.features(x), fast.features(x)
    assert b.dtype == torch.float32 and a.shape == b.shape
    assert torch.allclose(a, b, rtol=0.05, atol=0.05 * float(a.abs().max()))
    assert ref.feature_tag == "" and fast.feature_tag == "bf16+channels_last"
    with pytest.raises(ValueError, match="backbone_precision"):
        build_hashing_network(role="student", backbone="resnet18", code_length=16,
                              backbone_precision="fp8")


def test_multihead_attention_fast_path_is_counted_and_restored():
    """nn.MultiheadAttention in eval mode takes a fused fast path the counter cannot see; the
    count must include its projections and attention products all the same."""
    tokens, dim = 5, 8

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(dim, 2, batch_first=True)

        def forward(self, x):
            x = x.reshape(1, tokens, dim)
            return self.mha(x, x, x, need_weights=False)[0]

    expected = tokens * dim * 3 * dim + tokens * dim * dim + 2 * tokens * tokens * dim
    before = torch.backends.mha.get_fastpath_enabled()
    assert count_flops(Attn(), (1, tokens, dim)) == expected
    assert torch.backends.mha.get_fastpath_enabled() == before


@pytest.mark.parametrize("name, weights", [
    ("vit_b_16", "ViT_B_16_Weights"), ("efficientnet_b0", "EfficientNet_B0_Weights"),
    ("mobilenet_v2", "MobileNet_V2_Weights"), ("resnet18", "ResNet18_Weights")])
def test_paper_backbones_match_torchvision_multiply_adds(name, weights):
    """Within 5% of the published multiply-add counts at 224 px. Source: the torchvision model
    cards' "GFLOPS" column, stored in the installed torchvision as
    ``<Model>_Weights.IMAGENET1K_V1.meta["_ops"]`` (added in pytorch/vision PR #6936, "Adding FLOPs
    and size to model metadata"). Random weights on the meta device: no arithmetic runs."""
    import torchvision

    meta = getattr(torchvision.models, weights).IMAGENET1K_V1.meta
    if "_ops" not in meta:
        pytest.skip("this torchvision has no '_ops' field in its weight metadata")
    with torch.device("meta"):
        model = getattr(torchvision.models, name)()
    ours = count_flops(model, 224) / 1e9
    assert ours == pytest.approx(meta["_ops"], rel=0.05)
