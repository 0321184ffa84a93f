import sys
from pathlib import Path

import pytest

PYTORCH_DIR = Path(__file__).resolve().parents[1]
REPO = PYTORCH_DIR.parent
FIXTURES = REPO / "test" / "fixtures"
sys.path.insert(0, str(PYTORCH_DIR))

from pixelflow.config import ModelConfig  # noqa: E402

SMALL = ModelConfig(in_channels=3, out_channels=3, patch_size=2, num_attention_heads=2, attention_head_dim=8,
                    depth=1, num_classes=5, resolution=16, num_stages=3, num_train_timesteps=1000)


@pytest.fixture
def small_config() -> ModelConfig:
    return SMALL


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
