"""1414 IVR engine: FastAGI conversation engine and AMI watcher for Asterisk."""

__version__ = "0.1.0"
