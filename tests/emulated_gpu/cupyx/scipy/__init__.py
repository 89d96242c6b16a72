"""``cupyx.scipy``: only ``special``."""
