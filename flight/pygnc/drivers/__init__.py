"""Device drivers: pure codecs (bytes in, physical units out) and links over pyserial URLs."""
