# kernel: targets added here
