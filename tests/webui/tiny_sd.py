"""Write a tiny random-weight Stable Diffusion 1.x checkpoint that a real A1111 and a real Forge both load.

Test-time only (never committed, no downloads). It must not need the web UI's code: plain torch and JSON.

Why these shapes: Forge builds the CLIP ViT-L/14 text encoder and the VAE from its own bundled configs and
guesses the UNet from the state dict, accepting SD 1.x only with 320 model channels and 768-wide
cross-attention. So the checkpoint holds the real ldm key layout with a full-size text encoder and VAE and a
one-level UNet (320 channels, one ResBlock and one SpatialTransformer per stage). A1111 reads the
`<name>.yaml` written beside it (that UNet, and the text encoder/tokenizer from a local folder written here,
so nothing is fetched from Hugging Face). Every tensor is a strided window into a small pool of random
numbers (one pool per init scale), and `torch.save` stores each pool once: ~230 M parameters in ≈ 10 MB.

Usage: python tests/webui/tiny_sd.py <models/Stable-diffusion folder>   (writes tiny-sd15.ckpt/.yaml and
tiny-sd15-clip/; the CLIP tokenizer vocabulary comes from the installed `open_clip` package).
"""

import argparse
import gzip
import json
import math
from collections.abc import Iterator
from pathlib import Path

import torch

NAME = "tiny-sd15"
POOL_SIZE = 1 << 18  # random numbers per init scale; each tensor's rows are overlapping windows into one pool
CLIP_WIDTH, CLIP_LAYERS, CLIP_MLP, VOCAB, TOKENS = 768, 12, 3072, 49408, 77
UNET_CHANNELS, TIME_CHANNELS = 320, 1280
VAE_CHANNELS, VAE_MULT = 128, (1, 2, 4, 4)

Shape = tuple[int, ...]
Layout = Iterator[tuple[str, Shape, str]]  # (key, shape, kind): "weight", "embedding", "bias" or "norm" (ones)


def linear(key: str, out_features: int, in_features: int, bias: bool = True) -> Layout:
    yield f"{key}.weight", (out_features, in_features), "weight"
    if bias:
        yield f"{key}.bias", (out_features,), "bias"


def conv(key: str, out_channels: int, in_channels: int, kernel: int) -> Layout:
    yield f"{key}.weight", (out_channels, in_channels, kernel, kernel), "weight"
    yield f"{key}.bias", (out_channels,), "bias"


def norm(key: str, channels: int) -> Layout:
    yield f"{key}.weight", (channels,), "norm"
    yield f"{key}.bias", (channels,), "bias"


def clip_text_encoder(prefix: str) -> Layout:
    """transformers' CLIPTextModel (ViT-L/14 text tower), as SD 1.x checkpoints store it."""
    text = f"{prefix}text_model."
    yield f"{text}embeddings.token_embedding.weight", (VOCAB, CLIP_WIDTH), "embedding"
    yield f"{text}embeddings.position_embedding.weight", (TOKENS, CLIP_WIDTH), "embedding"
    for index in range(CLIP_LAYERS):
        layer = f"{text}encoder.layers.{index}."
        for projection in ("k_proj", "v_proj", "q_proj", "out_proj"):
            yield from linear(f"{layer}self_attn.{projection}", CLIP_WIDTH, CLIP_WIDTH)
        yield from norm(f"{layer}layer_norm1", CLIP_WIDTH)
        yield from linear(f"{layer}mlp.fc1", CLIP_MLP, CLIP_WIDTH)
        yield from linear(f"{layer}mlp.fc2", CLIP_WIDTH, CLIP_MLP)
        yield from norm(f"{layer}layer_norm2", CLIP_WIDTH)
    yield from norm(f"{text}final_layer_norm", CLIP_WIDTH)


def vae_resnet(key: str, in_channels: int, out_channels: int) -> Layout:
    yield from norm(f"{key}.norm1", in_channels)
    yield from conv(f"{key}.conv1", out_channels, in_channels, 3)
    yield from norm(f"{key}.norm2", out_channels)
    yield from conv(f"{key}.conv2", out_channels, out_channels, 3)
    if in_channels != out_channels:
        yield from conv(f"{key}.nin_shortcut", out_channels, in_channels, 1)


def vae_middle(key: str, channels: int) -> Layout:
    yield from vae_resnet(f"{key}.block_1", channels, channels)
    yield from norm(f"{key}.attn_1.norm", channels)
    for projection in ("q", "k", "v", "proj_out"):
        yield from conv(f"{key}.attn_1.{projection}", channels, channels, 1)
    yield from vae_resnet(f"{key}.block_2", channels, channels)


def vae(prefix: str) -> Layout:
    """ldm's AutoencoderKL with SD 1.x's ddconfig (ch 128, ch_mult 1-2-4-4, 2 ResBlocks, z 4)."""
    levels = len(VAE_MULT)
    channels = VAE_CHANNELS
    yield from conv(f"{prefix}encoder.conv_in", channels, 3, 3)
    for level, mult in enumerate(VAE_MULT):
        for block in range(2):
            yield from vae_resnet(f"{prefix}encoder.down.{level}.block.{block}", channels, VAE_CHANNELS * mult)
            channels = VAE_CHANNELS * mult
        if level != levels - 1:
            yield from conv(f"{prefix}encoder.down.{level}.downsample.conv", channels, channels, 3)
    yield from vae_middle(f"{prefix}encoder.mid", channels)
    yield from norm(f"{prefix}encoder.norm_out", channels)
    yield from conv(f"{prefix}encoder.conv_out", 8, channels, 3)
    yield from conv(f"{prefix}quant_conv", 8, 8, 1)
    yield from conv(f"{prefix}post_quant_conv", 4, 4, 1)
    yield from conv(f"{prefix}decoder.conv_in", channels, 4, 3)
    yield from vae_middle(f"{prefix}decoder.mid", channels)
    for level in reversed(range(levels)):
        for block in range(3):
            yield from vae_resnet(f"{prefix}decoder.up.{level}.block.{block}", channels, VAE_CHANNELS * VAE_MULT[level])
            channels = VAE_CHANNELS * VAE_MULT[level]
        if level != 0:
            yield from conv(f"{prefix}decoder.up.{level}.upsample.conv", channels, channels, 3)
    yield from norm(f"{prefix}decoder.norm_out", channels)
    yield from conv(f"{prefix}decoder.conv_out", 3, channels, 3)


def unet_resblock(key: str, in_channels: int, out_channels: int) -> Layout:
    yield from norm(f"{key}.in_layers.0", in_channels)
    yield from conv(f"{key}.in_layers.2", out_channels, in_channels, 3)
    yield from linear(f"{key}.emb_layers.1", out_channels, TIME_CHANNELS)
    yield from norm(f"{key}.out_layers.0", out_channels)
    yield from conv(f"{key}.out_layers.3", out_channels, out_channels, 3)
    if in_channels != out_channels:
        yield from conv(f"{key}.skip_connection", out_channels, in_channels, 1)


def unet_transformer(key: str, channels: int, context: int = CLIP_WIDTH) -> Layout:
    yield from norm(f"{key}.norm", channels)
    yield from conv(f"{key}.proj_in", channels, channels, 1)
    block = f"{key}.transformer_blocks.0"
    for attention, source in (("attn1", channels), ("attn2", context)):
        yield from linear(f"{block}.{attention}.to_q", channels, channels, bias=False)
        yield from linear(f"{block}.{attention}.to_k", channels, source, bias=False)
        yield from linear(f"{block}.{attention}.to_v", channels, source, bias=False)
        yield from linear(f"{block}.{attention}.to_out.0", channels, channels)
    yield from linear(f"{block}.ff.net.0.proj", channels * 8, channels)  # GEGLU: 2 × (4 × channels)
    yield from linear(f"{block}.ff.net.2", channels, channels * 4)
    for index in (1, 2, 3):
        yield from norm(f"{block}.norm{index}", channels)
    yield from conv(f"{key}.proj_out", channels, channels, 1)


def unet(prefix: str) -> Layout:
    """ldm's UNetModel: channel_mult [1], num_res_blocks 1, attention at that level, context 768."""
    width = UNET_CHANNELS
    yield from linear(f"{prefix}time_embed.0", TIME_CHANNELS, width)
    yield from linear(f"{prefix}time_embed.2", TIME_CHANNELS, TIME_CHANNELS)
    yield from conv(f"{prefix}input_blocks.0.0", width, 4, 3)
    yield from unet_resblock(f"{prefix}input_blocks.1.0", width, width)
    yield from unet_transformer(f"{prefix}input_blocks.1.1", width)
    yield from unet_resblock(f"{prefix}middle_block.0", width, width)
    yield from unet_transformer(f"{prefix}middle_block.1", width)
    yield from unet_resblock(f"{prefix}middle_block.2", width, width)
    for block in (0, 1):  # each takes one skip connection: [conv_in, input_blocks.1]
        yield from unet_resblock(f"{prefix}output_blocks.{block}.0", 2 * width, width)
        yield from unet_transformer(f"{prefix}output_blocks.{block}.1", width)
    yield from norm(f"{prefix}out.0", width)
    yield from conv(f"{prefix}out.2", 4, width, 3)


def layout() -> Layout:
    yield from clip_text_encoder("cond_stage_model.transformer.")
    yield from vae("first_stage_model.")
    yield from unet("model.diffusion_model.")


def windowed(pool: torch.Tensor, shape: Shape) -> torch.Tensor:
    """A tensor of `shape` whose rows are overlapping windows into `pool` (no copy, so saved once)."""
    row = math.prod(shape[1:])
    step = min(row, (pool.numel() - row) // shape[0])
    inner = [math.prod(shape[index + 1 :]) for index in range(1, len(shape))]
    return pool.as_strided(shape, (step, *inner))


def state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The whole checkpoint: weights ~ N(0, 1/fan_in), embeddings and biases ~ N(0, 0.02²), norm scales 1.

    Biases are not zero: with zero LayerNorm biases the text encoder's output has a mean of exactly 0 for some
    prompts, and the web UIs' emphasis step (which divides by that mean) turns the whole conditioning into NaN.
    """
    generator = torch.Generator().manual_seed(seed)
    pools: dict[float, torch.Tensor] = {}
    ones = torch.ones(1, dtype=torch.float16)
    tensors = {}
    for key, shape, kind in layout():
        if kind == "norm":
            tensors[key] = ones.expand(shape)
        else:
            std = 1 / math.sqrt(math.prod(shape[1:])) if kind == "weight" else 0.02
            if std not in pools:
                pools[std] = (torch.randn(POOL_SIZE, generator=generator) * std).half()
            tensors[key] = windowed(pools[std], shape)
    tensors["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(TOKENS)[None]
    return tensors


def clip_vocabulary() -> tuple[dict[str, int], list[str]]:
    """CLIP's BPE vocabulary and merges, rebuilt from open_clip's copy exactly as openai/CLIP builds them."""
    import open_clip.tokenizer as clip_tokenizer  # only the host venvs have it

    with gzip.open(clip_tokenizer.default_bpe(), "rt", encoding="utf-8") as file:
        merges = file.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = list(clip_tokenizer.bytes_to_unicode().values())
    symbols += [symbol + "</w>" for symbol in symbols]
    symbols += ["".join(merge.split()) for merge in merges]
    symbols += ["<|startoftext|>", "<|endoftext|>"]
    return {symbol: index for index, symbol in enumerate(symbols)}, merges


def write_clip_folder(folder: Path) -> None:
    """A Hugging Face style folder for CLIPTokenizer/CLIPTextModel.from_pretrained (ViT-L/14 text config)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary, merges = clip_vocabulary()
    (folder / "vocab.json").write_text(json.dumps(vocabulary), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    special["pad_token"] = "<|endoftext|>"
    (folder / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    tokenizer = {**special, "model_max_length": TOKENS, "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    config = {
        "architectures": ["CLIPTextModel"],
        "model_type": "clip_text_model",
        "hidden_act": "quick_gelu",
        "hidden_size": CLIP_WIDTH,
        "intermediate_size": CLIP_MLP,
        "num_attention_heads": 12,
        "num_hidden_layers": CLIP_LAYERS,
        "max_position_embeddings": TOKENS,
        "vocab_size": VOCAB,
        "layer_norm_eps": 1e-5,
        "projection_dim": CLIP_WIDTH,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "pad_token_id": 1,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")


A1111_CONFIG = """\
# {name}: SD 1.x (v1-inference.yaml) with a one-level UNet and a local CLIP folder; written by tiny_sd.py
model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 64
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32
        in_channels: 4
        out_channels: 4
        model_channels: {unet_channels}
        attention_resolutions: [ 1 ]
        num_res_blocks: 1
        channel_mult: [ 1 ]
        num_heads: 8
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: {clip_width}
        use_checkpoint: False
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: {vae_channels}
          ch_mult: {vae_mult}
          num_res_blocks: 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        version: {clip_folder}
"""


def write_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write `<folder>/tiny-sd15.ckpt`, its A1111 `.yaml` and the `tiny-sd15-clip/` folder; returns the ckpt."""
    folder.mkdir(parents=True, exist_ok=True)
    clip_folder = folder / f"{NAME}-clip"
    write_clip_folder(clip_folder)
    config = A1111_CONFIG.format(
        name=NAME,
        unet_channels=UNET_CHANNELS,
        clip_width=CLIP_WIDTH,
        vae_channels=VAE_CHANNELS,
        vae_mult=list(VAE_MULT),
        clip_folder=json.dumps(str(clip_folder.resolve())),
    )
    (folder / f"{NAME}.yaml").write_text(config, encoding="utf-8")
    checkpoint = folder / f"{NAME}.ckpt"
    partial = checkpoint.with_suffix(".ckpt.part")
    torch.save({"state_dict": state_dict(seed)}, partial)
    partial.replace(checkpoint)
    return checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the web UI's models/Stable-diffusion folder")
    parser.add_argument("--seed", type=int, default=0)
    checkpoint = write_checkpoint(parser.parse_args().folder, parser.parse_args().seed)
    print(f"wrote {checkpoint} ({checkpoint.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
