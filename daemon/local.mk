# daemon: targets added here
