# client-lib: targets added here
