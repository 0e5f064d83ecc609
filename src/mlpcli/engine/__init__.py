"""The torch engine: building the network, running it on a device, statistics, exports."""
