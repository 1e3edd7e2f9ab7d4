# proto: targets added here
