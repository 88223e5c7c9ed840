"""Offline speech: Vosk recognition in a bounded pool, and deciding what the caller said.

The interpreter uses:
    service = SpeechService.from_settings(settings.speech); await service.start()
    recognition = await service.recognize(wav_path, language, phrases)  # None: use DTMF
    Matcher(options).match(recognition, language); is_operator_request(recognition, language)
    IntentClassifier(topics).classify(recognition, language)
"""

from ivr.speech.matcher import IntentClassifier, Match, Matcher, grammar_phrases, is_operator_request
from ivr.speech.recognizer import Recognition, SpeechService, Word
from ivr.speech.vocabulary import model_vocabulary, unknown_words, vocabulary_for

__all__ = [
    "IntentClassifier",
    "Match",
    "Matcher",
    "Recognition",
    "SpeechService",
    "Word",
    "grammar_phrases",
    "is_operator_request",
    "model_vocabulary",
    "unknown_words",
    "vocabulary_for",
]
