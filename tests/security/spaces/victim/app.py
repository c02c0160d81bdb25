import gradio as gr


def greet(name):
    return "Hello " + name


gr.Interface(greet, "text", "text").launch()
