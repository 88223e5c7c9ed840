"""What the engine itself says, beside the menus: apologies, queue figures, callbacks, closed hours.

Sound names live under ivr/ in prompts/<language>/, built with the menus' texts by `ivr prompts build`.
"""

from __future__ import annotations

from ivr.texts import PromptText

SYSTEM_TEXTS: dict[str, dict[str, str]] = {
    "ivr/not-understood": {
        "kk": "Кешіріңіз, түсінбедім.",
        "ru": "Извините, я вас не понял.",
    },
    "ivr/press-a-key": {
        "kk": "Телефондағы батырманы басыңыз.",
        "ru": "Пожалуйста, нажмите кнопку на телефоне.",
    },
    "ivr/connecting-operator": {
        "kk": "Сізді операторға қосып жатырмын.",
        "ru": "Соединяю вас с оператором.",
    },
    "ivr/technical-problem": {
        "kk": "Кешіріңіз, техникалық ақау орын алды. Сізді операторға қосамын.",
        "ru": "Извините, произошла техническая ошибка. Соединяю вас с оператором.",
    },
    "ivr/incident-intro": {
        "kk": "Назар аударыңыз!",
        "ru": "Внимание!",
    },
    "ivr/queue-position": {
        "kk": "Сіздің кезектегі нөміріңіз:",
        "ru": "Ваш номер в очереди:",
    },
    "ivr/queue-wait": {
        "kk": "Күтудің болжамды уақыты:",
        "ru": "Примерное время ожидания:",
    },
    "ivr/callback-offer": {
        "kk": "Оператор сізге кейін қоңырау шалуы үшін бірді басыңыз. Желіде күту үшін екіні басыңыз.",
        "ru": "Чтобы оператор перезвонил вам позже, нажмите один. Чтобы остаться на линии, нажмите два.",
    },
    # after a queue gave the caller back: staying on the line is no longer a choice
    "ivr/callback-offer-busy": {
        "kk": "Қазір барлық операторлар бос емес. Оператор сізге кейін қоңырау шалуы үшін бірді басыңыз.",
        "ru": "Сейчас все операторы заняты. Чтобы оператор перезвонил вам позже, нажмите один.",
    },
    "ivr/callback-offer-closed": {
        "kk": "Оператор сізге жұмыс уақытында қоңырау шалуы үшін бірді басыңыз. Мәзірге оралу үшін екіні басыңыз.",
        "ru": "Чтобы оператор перезвонил вам в рабочее время, нажмите один. Чтобы вернуться в меню, нажмите два.",
    },
    "ivr/callback-number-is": {
        "kk": "Сізге мына нөмірге қоңырау шаламыз:",
        "ru": "Мы перезвоним вам на номер:",
    },
    "ivr/callback-number-confirm": {
        "kk": "Нөмір дұрыс болса, бірді басыңыз. Басқа нөмір енгізу үшін екіні басыңыз.",
        "ru": "Если номер верный, нажмите один. Чтобы ввести другой номер, нажмите два.",
    },
    "ivr/callback-enter-number": {
        "kk": "Телефон нөміріңізді енгізіп, соңында тор белгісін басыңыз.",
        "ru": "Введите номер телефона и в конце нажмите решётку.",
    },
    "ivr/callback-accepted": {
        "kk": "Өтінішіңіз қабылданды. Оператор сізге қоңырау шалады. Сау болыңыз!",
        "ru": "Ваша заявка принята. Оператор вам перезвонит. До свидания!",
    },
    # the request could not be stored (the database does not answer): the caller must not believe it was
    "ivr/callback-failed": {
        "kk": "Кешіріңіз, қазір өтінішіңізді қабылдау мүмкін болмады.",
        "ru": "Извините, сейчас мы не смогли принять вашу заявку.",
    },
    "ivr/closed": {
        "kk": "Қазір операторлар жұмыс істемейді. Операторлар дүйсенбіден жұмаға дейін, сағат тоғыздан "
        "он сегізге дейін жауап береді.",
        "ru": "Сейчас операторы не работают. Операторы отвечают с понедельника по пятницу, с девяти до "
        "восемнадцати часов.",
    },
    # when no queue can take the caller; also played by the dialplan's fallback (asterisk-conf)
    "ivr/operators-busy": {
        "kk": "Кешіріңіз, қазір барлық операторлар бос емес. Кейінірек қайта қоңырау шалыңыз.",
        "ru": "Извините, сейчас все операторы заняты. Пожалуйста, перезвоните позже.",
    },
    "ivr/callback-intro": {
        "kk": "Сәлеметсіз бе! Бұл 1414 байланыс орталығы, өтінішіңіз бойынша қоңырау шалып тұрмыз. "
        "Қазір оператор жауап береді.",
        "ru": "Здравствуйте! Это контакт-центр 1414, перезваниваем по вашей заявке. Сейчас ответит оператор.",
    },
    "ivr/goodbye": {
        "kk": "Қоңырауыңызға рахмет. Сау болыңыз!",
        "ru": "Спасибо за звонок. До свидания!",
    },
}


def system_prompt_texts() -> list[PromptText]:
    return [
        PromptText(name, lang, text) for name, texts in SYSTEM_TEXTS.items() for lang, text in texts.items()
    ]


def incident_sound(incident_id: int) -> str:
    """Sound name of an outage announcement, synthesised when the incident is first seen."""
    return f"incidents/incident-{incident_id}"
