"""Test infrastructure for Sparkbook: an in-process Kubernetes API emulator built on kmock."""
from sparkbook.testing.emulator import Emulator, EmulatorThread, RequestRecord

__all__ = ['Emulator', 'EmulatorThread', 'RequestRecord']
