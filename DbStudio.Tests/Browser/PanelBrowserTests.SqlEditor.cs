// Two people open the SQL tab at once: each editor is created in its own browser and runs in its own project.
// Blazor Server runs a component's after-render step (where the editor is created) only when the browser acknowledges
// the render batch, so holding one browser's acknowledgements while another person opens the tab makes the overlap
// certain rather than a matter of timing. Screenshot: TestResults/screenshots/sql-editor-two-people.png.
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task Two_people_opening_the_sql_tab_at_once_each_get_their_own_editor_running_in_their_own_project()
    {
        var (a, aContext, aId) = await SignedInProjectAsync();
        var (b, bContext, bId) = await SignedInProjectAsync();

        // A's circuit again, through a route that can hold back the browser's render acknowledgements.
        var hold = false;
        var held = new List<IWebSocketFrame>();
        IWebSocketRoute? server = null;
        var gate = new object();
        await a.RouteWebSocketAsync(new Regex("/_blazor"), ws =>
        {
            var toServer = ws.ConnectToServer();
            ws.OnMessage(frame =>
            {
                lock (gate)
                {
                    if (hold && server == toServer && IsRenderAck(frame)) { held.Add(frame); return; }
                }
                Forward(toServer, frame);
            });
            lock (gate) server = toServer;
        });
        await a.ReloadAsync();
        await OpenPanelAsync(a);
        Assert.NotNull(server);

        // A opens the SQL tab: the server renders it (the tab's markup reaches A's page), but is not told it was applied.
        lock (gate) hold = true;
        await a.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await Assertions.Expect(a.Locator("#sql-run")).ToBeVisibleAsync(Slow);

        // Meanwhile B opens it and gets an editor; A still has none (its acknowledgement is held).
        await b.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await Assertions.Expect(b.Locator("#sql-input .monaco-editor[role=code]")).ToBeVisibleAsync(Slow);
        await Assertions.Expect(a.Locator("#sql-input .monaco-editor")).ToHaveCountAsync(0);

        // Now A's acknowledgements go through: A's editor is created, in A's page.
        lock (gate)
        {
            Assert.NotEmpty(held); // the overlap did happen
            hold = false;
            foreach (var frame in held) Forward(server!, frame);
            held.Clear();
        }
        await Assertions.Expect(a.Locator("#sql-input .monaco-editor[role=code]")).ToBeVisibleAsync(Slow);
        await Assertions.Expect(a.Locator("#db-panel")).ToBeVisibleAsync(); // not replaced by the panel's error view
        Assert.Equal(1, await b.Locator(".monaco-editor[role=code]").CountAsync());

        // Each editor's Ctrl+Enter runs what is in it, in its own person's project.
        foreach (var (page, id) in new[] { (a, aId), (b, bId) })
        {
            await SetSqlAsync(page, "select current_schema() as schema_now");
            await page.Locator("#sql-input .monaco-editor[role=code] textarea").FocusAsync();
            await page.Keyboard.PressAsync("Control+Enter");
            await Assertions.Expect(page.Locator("#sql-result-0")).ToContainTextAsync($"proj_{id}", new() { Timeout = 20_000 });
        }
        await Assertions.Expect(a.Locator("#sql-result-0")).Not.ToContainTextAsync($"proj_{bId}");
        await Assertions.Expect(b.Locator("#sql-result-0")).Not.ToContainTextAsync($"proj_{aId}");
        await a.ScreenshotAsync(new() { Path = Path.Combine(Shots, "sql-editor-two-people.png") });

        // A script longer than one SignalR message from the browser (32 KB) runs, and — as the editor and its text model
        // go with the tab, one of each however often it opens — comes back with the tab.
        var big = $"select length('{new string('x', 200_000)}') as n";
        await SetSqlAsync(a, big);
        await a.ClickAsync("#sql-run");
        await Assertions.Expect(a.Locator("#sql-result-0")).ToContainTextAsync("200000", new() { Timeout = 20_000 });
        for (var i = 0; i < 3; i++)
        {
            await a.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
            await Assertions.Expect(a.Locator("#sql-input")).ToHaveCountAsync(0);
            await a.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
            await Assertions.Expect(a.Locator("#sql-input .monaco-editor[role=code]")).ToBeVisibleAsync(Slow);
        }
        await a.WaitForFunctionAsync("() => monaco.editor.getModels().length === 1 && monaco.editor.getEditors().length === 1");
        Assert.Equal(big, await a.Locator("#sql-input .sql-monaco").EvaluateAsync<string>("host => host.dbstudioEditor.getValue()"));
        await Assertions.Expect(a.Locator("#db-panel")).ToBeVisibleAsync();

        await aContext.CloseAsync();
        await bContext.CloseAsync();
    }

    /// <summary>Creating an editor on a slow, shared machine.</summary>
    private static readonly LocatorAssertionsToBeVisibleOptions Slow = new() { Timeout = 20_000 };

    /// <summary>Blazor's "this render batch is applied" message (a hub invocation of OnRenderCompleted).</summary>
    private static bool IsRenderAck(IWebSocketFrame frame) =>
        (frame.Text ?? (frame.Binary is { } bytes ? Encoding.UTF8.GetString(bytes) : "")).Contains("OnRenderCompleted");

    private static void Forward(IWebSocketRoute to, IWebSocketFrame frame)
    {
        if (frame.Binary is { } bytes) to.Send(bytes);
        else to.Send(frame.Text);
    }
}
