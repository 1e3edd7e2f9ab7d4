# man: targets added here
