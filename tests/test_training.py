"""Every conditioning mode trains (its loss goes down on a tiny crop), and 2-process torchrun works."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from SemanticSynthLib.engine.model import conditioning_modes
from SemanticSynthLib.engine.model.conditioning import label_condition
from SemanticSynthLib.engine.model.conditioning_modes import MODES, ConditioningMode
from SemanticSynthLib.engine.model.networks import LatentDenoiser, build_autoencoder, default_autoencoder_config, default_unet_config
from SemanticSynthLib.engine.synthesis.schedule import ddpm, default_schedule
from SemanticSynthLib.engine.model.precision import reconstruct

from testdata import REPO, crop_case


def _tiny_crop():
    image, labels = crop_case("IXI013-HH-1212", 32)
    import SimpleITK as sitk

    x = sitk.GetArrayFromImage(image).astype(np.float32)
    return torch.from_numpy(x / np.percentile(x[x > 0], 99.5))[None, None], torch.from_numpy(sitk.GetArrayFromImage(labels).astype(np.int64))


@pytest.mark.parametrize("mode", list(MODES))
def test_conditioning_mode_loss_goes_down(mode):
    torch.manual_seed(0)
    _, labels = _tiny_crop()
    classes = torch.from_numpy(np.unique(labels.numpy(), return_inverse=True)[1].reshape(labels.shape))[None, None]
    num_classes = int(classes.max()) + 1
    cond = label_condition(classes, num_classes, 4, mode)  # 8^3 latent grid
    latent = torch.randn(2, 8, 8, 8, 8)
    cond = cond.expand(2, -1, -1, -1, -1)
    model = LatentDenoiser(8, num_classes, mode, 1, default_unet_config())
    scheduler = ddpm(default_schedule())
    noise = torch.randn_like(latent)
    t = torch.tensor([100, 600])
    noisy = scheduler.add_noise(latent, noise, t)
    mod = torch.zeros(2, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        return F.mse_loss(model(noisy, t, cond, mod), noise)

    with torch.no_grad():
        before = loss().item()
    for _ in range(25):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.8 * before, (mode, before, after)


def test_another_conditioning_mode_is_one_registry_entry(monkeypatch):
    """Registered in conditioning_modes.MODES only, a mode reaches the command line, the package schema, the label
    condition and the U-Net."""
    from monai.networks.nets import SPADEDiffusionModelUNet

    from SemanticSynthLib.cli import build_parser
    from SemanticSynthLib.engine.model.package_metadata import default_model_dir
    from SemanticSynthLib.engine.model.schema import validate_metadata
    from SemanticSynthLib.errors import SynthError

    monkeypatch.setitem(conditioning_modes.MODES, "spade_edge",
                        ConditioningMode("spade_edge", "spade", True, "SPADE plus a label-boundary channel"))
    args = build_parser().parse_args(["train-diffusion", "--data", "d.csv", "--out", "o", "--autoencoder", "a",
                                      "--conditioning", "spade_edge"])
    assert args.conditioning == "spade_edge"
    meta = json.loads((default_model_dir() / "brain-mri" / "metadata.json").read_text(encoding="utf-8"))
    meta["diffusion"]["conditioning"] = "spade_edge"
    validate_metadata(meta, "test")
    meta["diffusion"]["conditioning"] = "unregistered"
    with pytest.raises(SynthError, match="field diffusion.conditioning: must be one of concat, spade, edge, detail, spade_edge"):
        validate_metadata(meta, "test")
    classes = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    classes[..., 4:] = 1
    cond = label_condition(classes, 2, 4, "spade_edge")
    assert cond.shape == (1, 3, 2, 2, 2)  # two label fractions and the boundary channel
    model = LatentDenoiser(8, 2, "spade_edge", 1, default_unet_config())
    assert isinstance(model.unet, SPADEDiffusionModelUNet)
    out = model(torch.randn(1, 8, 8, 8, 8), torch.tensor([10]), F.interpolate(cond, size=(8, 8, 8)), torch.zeros(1, dtype=torch.long))
    assert out.shape == (1, 8, 8, 8, 8)


def test_autoencoder_l1_goes_down():
    torch.manual_seed(0)
    x, _ = _tiny_crop()
    ae = build_autoencoder(default_autoencoder_config())
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    with torch.no_grad():
        before = F.l1_loss(reconstruct(ae, x)[0], x).item()
    for _ in range(30):
        recon, codebook = reconstruct(ae, x)
        loss = F.l1_loss(recon, x) + codebook
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = F.l1_loss(reconstruct(ae, x)[0], x).item()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("command,extra,section", [
    ("train-diffusion", ["--latent-patch", "8"], "diffusion"),
    ("train-segmenter", ["--patch", "32"], "segmenter"),
])
def test_torchrun_two_processes(command, extra, section, tiny_dataset, tiny_model, tmp_path):
    """The unchanged training command under torchrun --nproc_per_node 2 (gloo on CPU)."""
    out = tmp_path / "ddp_model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29731",
           "-m", "SemanticSynthLib", command, "--data", str(tiny_dataset), "--out", str(out), "--steps", "4",
           "--progress", "none", "--log-every", "2", *extra]
    if command == "train-diffusion":
        cmd += ["--autoencoder", str(tiny_model)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["training"][section]["processes"] == 2
    assert meta["training"][section]["backend"] == "gloo"
    log = [json.loads(line) for line in (tmp_path / "ddp_model.log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in log] == [2, 4]


def test_resume_continues_from_checkpoint(tiny_dataset, tiny_model, tmp_path):
    from SemanticSynthLib.cli import main

    args = ["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(tiny_model), "--out", str(tmp_path / "m"),
            "--latent-patch", "8", "--progress", "none", "--log-every", "1", "--checkpoint-every", "2", "--resume"]
    assert main(args + ["--steps", "2"]) == 0
    saved = json.loads((tmp_path / "m.checkpoint" / "checkpoint.json").read_text(encoding="utf-8"))
    assert saved["optimizers"]["opt"]["param_groups"][0]["lr"] == 2e-4
    # as if the first part had trained for 1000 s, so the resumed part's clock is told apart from its own
    saved["info"]["time_s"] = 1000.0
    (tmp_path / "m.checkpoint" / "checkpoint.json").write_text(json.dumps(saved), encoding="utf-8")
    # replacing the first run's package needs --overwrite; the resumed part trains at the --lr it is given
    assert main(args + ["--steps", "4", "--overwrite", "--lr", "3e-5"]) == 0
    lines = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 3, 4]  # the second run started at step 3, not from scratch
    # the log's clock, like the package's record, goes on from the checkpoint's
    assert lines[1]["time_s"] < 1000 <= lines[2]["time_s"]
    record = json.loads((tmp_path / "m" / "metadata.json").read_text(encoding="utf-8"))["training"]["diffusion"]
    assert record["time_s"] >= 1000
    saved = json.loads((tmp_path / "m.checkpoint" / "checkpoint.json").read_text(encoding="utf-8"))
    assert saved["info"]["step"] == 4 and saved["optimizers"]["opt"]["param_groups"][0]["lr"] == 3e-5


def test_ddim_with_the_exact_training_target_recovers_the_latent():
    """The sampler inverts what training teaches: feeding DDIM the true v (or eps) returns the clean latent."""
    from SemanticSynthLib.engine.synthesis.schedule import ddim, training_target

    schedule = default_schedule()
    torch.manual_seed(0)
    clean = torch.randn(1, 8, 4, 4, 4)
    train = ddpm(schedule)
    sampler = ddim(schedule, 20)
    latent = torch.randn_like(clean)
    for t in sampler.timesteps:
        ab = sampler.alphas_cumprod[int(t)]
        noise = (latent - ab.sqrt() * clean) / (1 - ab).sqrt()  # the noise that explains the current latent
        target = training_target(train, clean, noise, torch.tensor([int(t)]))
        latent, _ = sampler.step(target, t, latent)
    assert schedule["prediction_type"] == "v_prediction"
    assert torch.allclose(latent, clean, atol=1e-4)


def test_plain_autoencoder_starts_from_a_label_aware_package(tiny_model, tiny_dataset, tmp_path):
    """The translator's image-only autoencoder from the label-aware brain-mri: same sizes, its VQVAE part copied."""
    from SemanticSynthLib.cli import main
    from SemanticSynthLib.engine.model.networks import build_autoencoder, plain_vqvae_config, vqvae_config
    from SemanticSynthLib.engine.model.package import load_package
    from SemanticSynthLib.engine.training.autoencoder import warm_start

    source = load_package(tiny_model, need_diffusion=False)
    assert source.label_aware
    plain = build_autoencoder(plain_vqvae_config(source.metadata["autoencoder"]["config"]))
    assert warm_start(plain, source.autoencoder.vqvae.state_dict()) == len(plain.state_dict())
    inner = source.autoencoder.vqvae.state_dict()
    for name, value in plain.state_dict().items():  # whole tensors equal; the 2-channel input's image channel
        assert torch.equal(value, inner[name][tuple(slice(0, n) for n in value.shape)]), name
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(tmp_path / "plain"), "--init", str(tiny_model),
                 "--steps", "2", "--patch", "32", "--progress", "none"]) == 0
    out = load_package(tmp_path / "plain", need_diffusion=False)
    assert not out.label_aware
    config = out.metadata["autoencoder"]["config"]
    assert config["in_channels"] == 1 and config["num_embeddings"] == vqvae_config(source.metadata["autoencoder"]["config"])["num_embeddings"]


def test_decoder_only_fine_tuning_keeps_the_latent_space_and_the_diffusion(tiny_model, tiny_dataset, tmp_path):
    """--decoder-only: encoder and codebook bit for bit, the decoder trained, the U-Net carried over as stored,
    and the result a whole generator package that generates."""
    from SemanticSynthLib.cli import main
    from SemanticSynthLib.engine.synthesis.generate import generate_volume
    from SemanticSynthLib.engine.model.package import load_package

    out = tmp_path / "decoder"
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(out), "--init", str(tiny_model),
                 "--label-table", "muse", "--decoder-only", "--steps", "3", "--patch", "32", "--adv-start", "1",
                 "--gradient-weight", "1", "--log-every", "1", "--progress", "none"]) == 0
    before, after = load_package(tiny_model), load_package(out)
    old, new = before.autoencoder.state_dict(), after.autoencoder.state_dict()
    frozen = [k for k in old if k.startswith(("vqvae.encoder.", "vqvae.quantizer."))]
    trained = [k for k in old if k.startswith(("vqvae.decoder.", "modulation.", "head."))]
    assert frozen and trained
    assert all(torch.equal(old[k], new[k]) for k in frozen)
    assert any(not torch.equal(old[k], new[k]) for k in trained)
    assert (out / "diffusion.safetensors").read_bytes() == (tiny_model / "diffusion.safetensors").read_bytes()
    assert after.metadata["diffusion"]["latent_scale"] == before.metadata["diffusion"]["latent_scale"]
    assert after.metadata["training"]["decoder"]["steps"] == 3
    assert after.metadata["training"]["decoder"]["gradient_weight"] == 1
    log = [json.loads(line) for line in (tmp_path / "decoder.log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["gradient"] > 0 for r in log)
    assert after.metadata["training"]["diffusion"] == before.metadata["training"]["diffusion"]
    import SimpleITK as sitk

    labels = sitk.ReadImage(str(next((tiny_dataset / "labelsTr").iterdir())))
    image = generate_volume(after, labels, steps=2)
    assert image.GetSize() == labels.GetSize()


def test_head_blocks_grow_a_decoder_that_starts_as_the_identity(tiny_model, tiny_dataset, tmp_path, capsys):
    """--head-blocks 1 on an --init package: at the start the grown decoder decodes exactly as the package's;
    with --decoder-only the block trains, the latent space stays, and the package records the block. Blocks
    beyond the halo's limit, or fewer than the package has, are one-line errors."""
    from SemanticSynthLib.cli import main
    from SemanticSynthLib.engine.synthesis.generate import generate_volume
    from SemanticSynthLib.engine.model.package import load_package
    from SemanticSynthLib.engine.model.cpu_convolution import for_inference
    from SemanticSynthLib.engine.training.autoencoder import init_autoencoder
    import SimpleITK as sitk

    before = load_package(tiny_model)
    config = {**before.metadata["autoencoder"]["config"], "head_blocks": 1}
    grown = for_inference(init_autoencoder(before, config)).eval()  # the CPU convolution routing load_package uses
    assert len(grown.refinement) == 1 and len(before.autoencoder.refinement) == 0
    quantized = torch.randn(1, 8, 4, 4, 4)
    guide = torch.stack([torch.rand(1, 16, 16, 16), torch.randint(0, 3, (1, 16, 16, 16)).float()], 1)
    with torch.no_grad():
        assert torch.equal(grown.decode(quantized, guide), before.autoencoder.eval().decode(quantized, guide))

    out = tmp_path / "refined"
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(out), "--init", str(tiny_model),
                 "--label-table", "muse", "--decoder-only", "--head-blocks", "1", "--steps", "3", "--patch", "32",
                 "--lr", "1e-2", "--progress", "none"]) == 0
    after = load_package(out)
    assert after.metadata["autoencoder"]["config"]["head_blocks"] == 1
    old, new = before.autoencoder.state_dict(), after.autoencoder.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith(("vqvae.encoder.", "vqvae.quantizer.")))
    assert new["refinement.0.project.weight"].abs().max() > 0  # the block left the identity
    labels = sitk.ReadImage(str(next((tiny_dataset / "labelsTr").iterdir())))
    assert generate_volume(after, labels, steps=2).GetSize() == labels.GetSize()

    for blocks, message in (("2", "at most 1"), ("0", "fewer than the --init package's")):
        capsys.readouterr()
        assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(tmp_path / f"bad{blocks}"),
                     "--init", str(out), "--label-table", "muse", "--head-blocks", blocks, "--steps", "1",
                     "--patch", "32", "--progress", "none"]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / f"bad{blocks}").exists()


def test_codebook_groups_quantize_each_group_on_its_own(tiny_dataset, tiny_model, tmp_path):
    """--codebook-groups 4 from a one-group package: a new codebook of 2-channel codes, the rest warm-started;
    each latent voxel gets 4 codes; the inference lookup picks the training quantizer's codes; a diffusion
    U-Net trains on it and the package generates."""
    import SimpleITK as sitk

    from SemanticSynthLib.cli import main
    from SemanticSynthLib.engine.model.codebook import nearest_codes
    from SemanticSynthLib.engine.synthesis.generate import generate_volume
    from SemanticSynthLib.engine.model.package import load_package

    ae = tmp_path / "ae"
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(ae), "--init", str(tiny_model),
                 "--label-table", "muse", "--codebook-groups", "4", "--steps", "2", "--patch", "32",
                 "--adv-start", "2", "--progress", "none"]) == 0
    package = load_package(ae, need_diffusion=False)
    assert package.metadata["autoencoder"]["config"]["codebook_groups"] == 4
    model = package.autoencoder.eval()
    codes = model.vqvae.quantizer.quantizer.embedding.weight
    assert codes.shape[1] == 2  # 8 latent channels / 4 groups
    old, new = load_package(tiny_model).autoencoder.state_dict(), model.state_dict()
    # warm-started: after 2 Adam steps (lr 2e-4) every non-codebook tensor is within 1e-2 of the package's
    shared = [k for k in old if not k.startswith("vqvae.quantizer.") and old[k].is_floating_point()]
    assert shared and all((new[k] - old[k]).abs().max() < 1e-2 for k in shared)
    torch.manual_seed(0)
    z = torch.randn(1, 8, 4, 4, 4)
    with torch.no_grad():
        trained_rule = model.quantize(z)[0]
        lookup = nearest_codes(model, z)
    # MONAI adds a straight-through (x + (q - x)): its rounding is relative to the latent's scale
    assert torch.allclose(trained_rule, lookup, atol=1e-6 * z.abs().max())
    # each voxel's 4 channel pairs are each a code of the shared codebook: the nearest code reproduces the pair to
    # a tolerance relative to that code's norm. Direct differences, not cdist's |a|^2 + |b|^2 - 2ab, whose rounding
    # (about sqrt(eps) times the norms, 6e-5 here) depends on the CPU's matmul kernels.
    pairs = lookup.reshape(1, 4, 2, -1).permute(0, 1, 3, 2).reshape(-1, 2)
    nearest = codes[(pairs[:, None] - codes[None]).norm(dim=-1).argmin(dim=1)]
    assert ((pairs - nearest).norm(dim=1) <= 1e-5 * nearest.norm(dim=1)).all()
    assert not torch.equal(lookup[:, :2], lookup[:, 2:4])
    model_dir = tmp_path / "model"
    assert main(["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(ae), "--out", str(model_dir),
                 "--steps", "2", "--latent-patch", "8", "--progress", "none", "--default-steps", "2",
                 "--init", str(tiny_model)]) == 0
    assert load_package(model_dir).metadata["training"]["diffusion"]["init"] == str(tiny_model)
    labels = sitk.ReadImage(str(next((tiny_dataset / "labelsTr").iterdir())))
    image = generate_volume(load_package(model_dir), labels, steps=2)
    assert image.GetSize() == labels.GetSize()


def test_latent_channels_widen_the_autoencoder_and_the_unet_from_where_they_were(tiny_model, tiny_dataset, tmp_path, capsys):
    """--latent-channels 16 on an 8-channel --init package: the codebook is kept (each code keeps its channels, so
    the latent gets twice the groups); the widened decoder and U-Net start out computing what the package's did,
    reading and writing zeros for the new channels; both train and the package generates. Narrowing is a
    one-line error."""
    import SimpleITK as sitk

    from SemanticSynthLib.cli import main
    from SemanticSynthLib.engine.synthesis.generate import generate_volume
    from SemanticSynthLib.engine.model.package import load_package
    from SemanticSynthLib.engine.training.autoencoder import warm_start, widen_latent

    before = load_package(tiny_model)
    config8 = before.metadata["autoencoder"]["config"]
    groups8 = config8.get("codebook_groups", 1)
    config16 = json.loads(json.dumps(config8))
    config16["vqvae"]["embedding_dim"], config16["codebook_groups"] = 16, 2 * groups8
    widened = build_autoencoder(config16)
    warm_start(widened, before.autoencoder.state_dict())
    widen_latent(widened, 8)
    torch.manual_seed(0)
    quantized = torch.randn(1, 8, 4, 4, 4)
    guide = torch.stack([torch.rand(1, 16, 16, 16), torch.randint(0, 3, (1, 16, 16, 16)).float()], 1)
    with torch.no_grad():
        old = before.autoencoder.eval().decode(quantized, guide)
        new = widened.eval().decode(torch.cat([quantized, torch.randn(1, 8, 4, 4, 4)], 1), guide)
    assert torch.allclose(old, new, atol=1e-5 * old.abs().max())  # convolutions of 8 vs 16 channels: rounding aside

    unet8 = before.denoiser
    with torch.no_grad():  # MONAI starts the output convolution at zero; give it weights so the check can fail
        unet8.unet.out[2].conv.weight.normal_(0, 0.01)
    unet16 = LatentDenoiser(16, before.labels.num_classes, unet8.conditioning, 1, before.metadata["diffusion"]["config"],
                            priors=unet8.label_aware, factor=before.factor)
    unet16.load_state_dict(unet16.widened_state(unet8.state_dict(), 8))
    cond = torch.rand(1, unet16.label_embedding.in_channels, 8, 8, 8)
    z, t, modality = torch.randn(1, 8, 8, 8, 8), torch.tensor([500]), torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        out8 = unet8.eval()(z, t, cond, modality)
        out16 = unet16.eval()(torch.cat([z, torch.randn_like(z)], 1), t, cond, modality)
    assert out8.abs().max() > 0 and torch.allclose(out16[:, :8], out8, atol=1e-5 * out8.abs().max())
    assert torch.equal(out16[:, 8:], torch.zeros_like(out8))

    ae = tmp_path / "ae16"
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(ae), "--init", str(tiny_model),
                 "--label-table", "muse", "--latent-channels", "16", "--steps", "2", "--patch", "32",
                 "--adv-start", "2", "--progress", "none"]) == 0
    package = load_package(ae, need_diffusion=False)
    assert package.latent_channels == 16 and package.metadata["autoencoder"]["config"]["codebook_groups"] == 2 * groups8
    # the codebook came with it: 2 EMA updates rescale it, but it is still the package's, not one drawn afresh
    kept = before.autoencoder.state_dict()["vqvae.quantizer.quantizer.embedding.weight"].flatten()
    now = package.autoencoder.state_dict()["vqvae.quantizer.quantizer.embedding.weight"].flatten()
    assert torch.corrcoef(torch.stack([kept, now]))[0, 1] > 0.9
    model_dir = tmp_path / "model16"
    assert main(["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(ae), "--out", str(model_dir),
                 "--steps", "2", "--latent-patch", "8", "--progress", "none", "--default-steps", "2",
                 "--init", str(tiny_model)]) == 0
    labels = sitk.ReadImage(str(next((tiny_dataset / "labelsTr").iterdir())))
    assert generate_volume(load_package(model_dir), labels, steps=2).GetSize() == labels.GetSize()

    capsys.readouterr()
    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(tmp_path / "narrow"), "--init", str(ae),
                 "--label-table", "muse", "--latent-channels", "8", "--steps", "1", "--patch", "32",
                 "--progress", "none"]) != 0
    err = capsys.readouterr().err
    assert "fewer than the --init package's 16" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "narrow").exists()


def test_diffusion_init_needs_the_same_unet(tiny_dataset, tiny_model, tmp_path, capsys):
    from SemanticSynthLib.cli import main

    assert main(["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(tiny_model), "--out",
                 str(tmp_path / "m"), "--steps", "1", "--latent-patch", "8", "--conditioning", "spade",
                 "--init", str(tiny_model), "--progress", "none"]) != 0
    err = capsys.readouterr().err
    assert "U-Net (concat conditioning" in err and "differs from this one (spade" in err
    assert not (tmp_path / "m").exists()


def test_codebook_groups_must_divide_the_latent_channels(tiny_dataset, tmp_path, capsys):
    from SemanticSynthLib.cli import main

    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(tmp_path / "a"), "--label-table", "muse",
                 "--codebook-groups", "3", "--steps", "1", "--patch", "32", "--progress", "none"]) != 0
    assert "--codebook-groups 3 must divide the latent's 8 channels" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_gradient_difference_costs_a_blurred_edge_not_an_offset():
    """The gradient-difference loss is zero for the same image and for a constant offset (which L1 charges),
    and positive for a blurred edge (which L1 charges little)."""
    from SemanticSynthLib.engine.training.autoencoder import gradient_difference

    edge = torch.zeros(1, 1, 8, 8, 16)
    edge[..., 8:] = 1.0
    blurred = F.avg_pool3d(F.pad(edge, (1, 1, 1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert gradient_difference(edge, edge).item() == 0
    assert gradient_difference(edge + 0.1, edge).item() == pytest.approx(0, abs=1e-7)
    assert F.l1_loss(blurred, edge).item() < F.l1_loss(edge + 0.1, edge).item()
    assert gradient_difference(blurred, edge).item() > 0.01


def test_decoder_only_needs_an_init_package(tiny_dataset, tmp_path, capsys):
    from SemanticSynthLib.cli import main

    assert main(["train-autoencoder", "--data", str(tiny_dataset), "--out", str(tmp_path / "d"), "--label-table", "muse",
                 "--decoder-only", "--steps", "2", "--patch", "32", "--progress", "none"]) != 0
    assert "--decoder-only fine-tunes the decoder of an --init package" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_detail_condition_sees_what_averaging_loses_and_a_concat_unet_carries_over():
    """`detail` folds the working-resolution prior into the latent voxel's channels: two label maps with the same
    classes in every latent voxel, arranged differently inside it, give the same `concat` condition but different
    `detail` ones; and a `concat` U-Net's label embedding, widened, computes on the folded prior what it computed
    on the averaged one."""
    from SemanticSynthLib.engine.model.conditioning import widen_pooled_prior
    from SemanticSynthLib.engine.model.priors import ClassPriors

    priors = ClassPriors(unit=np.array([0.0, 0.3, 1.0], np.float32), kind=np.array([0, 3, 8], np.float32),
                         low=np.zeros(3), high=np.ones(3), source=["test"] * 3)
    a = torch.zeros(1, 1, 8, 8, 8, dtype=torch.long)
    a[..., 0:2] = 1
    a[..., 2:4] = 2  # latent voxel (z 0..3): grey then white along z
    b = a.flip(-1).roll(4, dims=-1)  # the same classes per latent voxel, white then grey
    assert torch.equal(label_condition(a, 3, 4, "concat", priors), label_condition(b, 3, 4, "concat", priors))
    ca, cb = label_condition(a, 3, 4, "detail", priors), label_condition(b, 3, 4, "detail", priors)
    assert ca.shape == (1, 64 + (ca.shape[1] - 64), 2, 2, 2) and not torch.equal(ca, cb)
    assert torch.allclose(ca[:, :64].mean(1), label_condition(a, 3, 4, "concat", priors)[:, 0], atol=1e-6)

    torch.manual_seed(0)
    pooled = LatentDenoiser(8, 3, "concat", 1, default_unet_config(), priors=True, factor=4)
    fine = LatentDenoiser(8, 3, "detail", 1, default_unet_config(), priors=True, factor=4)
    with torch.no_grad():  # MONAI starts the output convolution at zero; give it weights so the check can fail
        pooled.unet.out[2].conv.weight.normal_(0, 0.01)
    state = pooled.state_dict()
    state["label_embedding.weight"] = widen_pooled_prior(state["label_embedding.weight"], 4)
    fine.load_state_dict(state)
    z, t, m = torch.randn(1, 8, 8, 8, 8), torch.tensor([300]), torch.zeros(1, dtype=torch.long)
    up = lambda c: F.interpolate(c, size=(8, 8, 8))  # noqa: E731 -- the U-Net needs an 8^3 latent
    with torch.no_grad():
        expected = pooled(z, t, up(label_condition(a, 3, 4, "concat", priors)), m)
        got = fine(z, t, up(ca), m)
    assert expected.abs().max() > 0 and torch.allclose(expected, got, atol=1e-4 * expected.abs().max()), \
        (expected - got).abs().max()


def test_condition_dropout_nulls_whole_samples():
    from SemanticSynthLib.engine.training.diffusion import drop_condition

    cond = torch.ones(200, 3, 2, 2, 2)
    assert drop_condition(cond, 0.0, np.random.default_rng(0)) is cond
    dropped = drop_condition(cond, 0.3, np.random.default_rng(0))
    per_sample = dropped.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1).all(1)).all()  # a sample keeps all of its condition or none
    assert 0.2 < (per_sample == 0).all(1).float().mean() < 0.4


def test_guidance_extrapolates_from_the_null_condition():
    """denoise(guidance w) equals plain DDIM on u + w (c - u), with u the prediction for the zeroed condition."""
    from SemanticSynthLib.engine.reporting.progress import Progress
    from SemanticSynthLib.engine.synthesis.sampling import denoise

    channels = 2

    def predict(packed, t):  # c - u is the condition's sum; u a function of the latent alone
        return 0.1 * packed[:, :channels] + packed[:, channels:].sum(1, keepdim=True)

    def guided_by_hand(packed, t, w=2.5):
        return 0.1 * packed[:, :channels] + w * packed[:, channels:].sum(1, keepdim=True)

    latent, cond = torch.randn(1, channels, 4, 4, 4), torch.rand(1, 3, 4, 4, 4)
    run = lambda fn, w: denoise(fn, latent.clone(), cond, default_schedule(), 3, 8, False, Progress("none"), w)  # noqa: E731
    assert torch.allclose(run(predict, 2.5), run(guided_by_hand, 1.0), atol=1e-5)
    assert not torch.allclose(run(predict, 2.5), run(predict, 1.0), atol=1e-3)


def test_guidance_and_temperature_are_checked_and_recorded(tiny_model, tiny_dataset, tiny_labels, tmp_path, capsys):
    from SemanticSynthLib.cli import main
    import SimpleITK as sitk

    labels = tmp_path / "labels.nii.gz"
    sitk.WriteImage(tiny_labels, str(labels))
    out = tmp_path / "out.nrrd"
    assert main(["generate", str(labels), str(out), "--model", str(tiny_model), "--progress", "none", "--guidance", "2"]) == 2
    assert "--condition-dropout" in capsys.readouterr().err and not out.exists()
    assert main(["generate", str(labels), str(out), "--model", str(tiny_model), "--progress", "none", "--temperature", "0"]) == 2
    assert "--temperature: must be above 0" in capsys.readouterr().err and not out.exists()
    common = ["train-diffusion", "--data", str(tiny_dataset), "--autoencoder", str(tiny_model.parent / "ae"),
              "--steps", "4", "--latent-patch", "8", "--progress", "none", "--default-steps", "2"]
    assert main(common + ["--out", str(tmp_path / "bad"), "--guidance", "2"]) == 2
    assert not (tmp_path / "bad").exists()
    guided = tmp_path / "guided"
    assert main(common + ["--out", str(guided), "--condition-dropout", "0.3", "--guidance", "2", "--temperature", "0.6"]) == 0
    meta = json.loads((guided / "metadata.json").read_text(encoding="utf-8"))["diffusion"]
    assert (meta["condition_dropout"], meta["guidance"], meta["temperature"]) == (0.3, 2.0, 0.6)
    assert main(["generate", str(labels), str(out), "--model", str(guided), "--progress", "none"]) == 0
    written = sitk.ReadImage(str(out))
    assert (written.GetMetaData("SemanticSynth_guidance"), written.GetMetaData("SemanticSynth_temperature")) == ("2.0", "0.6")
    assert main(["generate", str(labels), str(out), "--model", str(guided), "--progress", "none", "--overwrite",
                 "--temperature", "1"]) == 0
    assert sitk.ReadImage(str(out)).GetMetaData("SemanticSynth_temperature") == "1.0"  # asked for beats the default
    from SemanticSynthLib.engine.model.schema import validate_metadata
    from SemanticSynthLib.errors import SynthError

    package = json.loads((guided / "metadata.json").read_text(encoding="utf-8"))
    package["diffusion"]["condition_dropout"] = 0.0  # a package that claims guidance its U-Net never learned
    with pytest.raises(SynthError, match="guidance above 1 needs a U-Net trained with condition_dropout"):
        validate_metadata(package, "test")
    package = json.loads((guided / "metadata.json").read_text(encoding="utf-8"))
    package["diffusion"]["temperature"] = 1.5
    with pytest.raises(SynthError, match="temperature"):
        validate_metadata(package, "test")
