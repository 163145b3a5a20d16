// bUnit events on components that re-render on their own (live streams, a model's reply arriving): the element is found
// and its event fired in one turn of the renderer's dispatcher, so no render can replace the handler in between. A find
// then an event from the test thread can race a render; bUnit then records an unknown-handler error that fails the test
// at its next step, so retrying the find does not help.
using AngleSharp.Dom;
using Bunit;
using Microsoft.AspNetCore.Components;

namespace DbStudio.Tests.Infrastructure;

public static class BunitEvents
{
    /// <summary>Finds <paramref name="selector"/> and fires <paramref name="fire"/> on it without a render in between.</summary>
    public static void Fire<T>(this IRenderedComponent<T> cut, string selector, Action<IElement> fire) where T : IComponent =>
        cut.InvokeAsync(() => fire(cut.Find(selector))).GetAwaiter().GetResult();

    public static void Click<T>(this IRenderedComponent<T> cut, string selector) where T : IComponent =>
        cut.Fire(selector, e => e.Click());
}
