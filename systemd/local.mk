# systemd: targets added here
