"""Prompts: Kazakh and Russian audio Asterisk can play, generated from the menu texts.

build (build_prompts, missing_prompts, check_prompts), numbers (say_number_prompts, minutes_phrase),
catalog (Asterisk's digits/ and queue- sounds), synth (espeak-ng through pyttsx3, which runs in
pyttsx3_worker, a child process handled by worker_process), audio (sox),
manifest (what the build made), cli (`ivr prompts build|say`).
"""
