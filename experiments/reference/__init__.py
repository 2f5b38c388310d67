"""Reference twins of hilt's own paths: the same networks in torch (torch_twin), aihwkit's own
analog layers and optimizer (native), and step timing against both (timing)."""
