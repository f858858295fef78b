"""Out-of-tree extensions, loaded with mmengine ``custom_imports``."""
