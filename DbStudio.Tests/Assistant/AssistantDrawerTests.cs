// bUnit: the assistant drawer with the real Core services, its model a FakeModelServer. What a person sees and clicks:
// blocks as code with Run, nothing run before a click, Run all stopping at the first error with the error shown, a
// DROP's typed confirmation; and without configuration, how to configure it.
using Bunit;
using DbStudio.Tests.Infrastructure;
using DbStudio.Web.Components.Panel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor.Services;

namespace DbStudio.Tests.Assistant;

public class AssistantDrawerTests : BunitContext, IClassFixture<AssistantFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly AssistantFixture _fx;

    public AssistantDrawerTests(AssistantFixture fx)
    {
        _fx = fx;
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
    }

    /// <summary>Core of its own, configured as <paramref name="app"/> is (the configured one unless said otherwise). The
    /// drawer needs none of Core's hosted services: nothing here listens or streams.</summary>
    private void UseServicesOf(IServiceProvider app) => Services.AddCoreHost(app.GetRequiredService<IConfiguration>());

    private IRenderedComponent<AssistantDrawer> Ask(Core.Projects.ProjectInfo p, string question)
    {
        UseServicesOf(_fx.Factory.Services);
        Render<MudBlazor.MudPopoverProvider>();
        var cut = Render<AssistantDrawer>(ps => ps.Add(c => c.Project, p));
        cut.WaitForElement("#assistant-empty");
        cut.Fire("textarea#assistant-input, #assistant-input textarea", e => e.Input(question));
        cut.Click("#assistant-send");
        return cut;
    }

    [Fact]
    public async Task Three_blocks_show_as_code_run_only_on_a_click_and_run_all_stops_at_the_first_error_and_shows_it()
    {
        var (client, p) = await _fx.ProjectAsync();
        _fx.Server.Enqueue("Here you go.\n<sql>create table ui_first (n int)</sql>\n",
            "<sql>insert into ui_first values ('oops')</sql>\n<sql>create table ui_third (n int)</sql>");
        var cut = Ask(p, "two tables please");
        cut.WaitForAssertion(() => Assert.Equal(3, cut.FindAll("#assistant-msg-1 .assistant-block").Count), Wait);
        Assert.Equal("create table ui_first (n int)", cut.Find("#assistant-block-1-0 .assistant-code").TextContent);
        Assert.Contains("writes", cut.Find("#assistant-block-1-0 .assistant-risk").TextContent);
        Assert.Contains("two tables please", cut.Find("#assistant-msg-0").TextContent);
        Assert.False(await AssistantFixture.ExistsAsync(client, p.Id, "ui_first"));

        cut.Click("#assistant-run-all-1");
        cut.WaitForAssertion(() => Assert.Contains("Stopped at block 2", cut.Find("#assistant-stopped-at-1").TextContent), Wait);
        Assert.Contains("22P02", cut.Find("#assistant-block-1-1 .assistant-error").TextContent);
        Assert.Contains("ran", cut.Find("#assistant-block-1-0 .assistant-done").TextContent);
        Assert.Empty(cut.FindAll("#assistant-block-1-2 .assistant-done"));
        Assert.True(await AssistantFixture.ExistsAsync(client, p.Id, "ui_first"));
        Assert.False(await AssistantFixture.ExistsAsync(client, p.Id, "ui_third"));
    }

    [Fact]
    public async Task A_drop_asks_for_the_typed_name_before_it_runs()
    {
        var (client, p) = await _fx.ProjectAsync("create table precious (id int)");
        _fx.Server.Enqueue("<sql>drop table precious</sql>");
        var cut = Ask(p, "drop precious");
        cut.WaitForElement("#assistant-run-1-0", Wait);
        Assert.Contains("destructive", cut.Find("#assistant-block-1-0 .assistant-risk").TextContent);
        cut.Click("#assistant-run-1-0");
        cut.WaitForElement("#assistant-confirm-1-0");
        Assert.Contains("Type precious to run it", cut.Find("#assistant-confirm-1-0").TextContent);
        Assert.True(cut.Find("#assistant-confirm-run-1-0").HasAttribute("disabled"));
        cut.Fire("input#assistant-confirm-input-1-0, #assistant-confirm-input-1-0 input", e => e.Input("precio"));
        Assert.True(cut.Find("#assistant-confirm-run-1-0").HasAttribute("disabled"));
        Assert.True(await AssistantFixture.ExistsAsync(client, p.Id, "precious"));
        cut.Fire("input#assistant-confirm-input-1-0, #assistant-confirm-input-1-0 input", e => e.Input("precious"));
        cut.WaitForAssertion(() => Assert.False(cut.Find("#assistant-confirm-run-1-0").HasAttribute("disabled")));
        cut.Click("#assistant-confirm-run-1-0");
        cut.WaitForElement("#assistant-block-1-0 .assistant-done", Wait);
        Assert.False(await AssistantFixture.ExistsAsync(client, p.Id, "precious"));
    }

    [Fact]
    public async Task Not_configured_the_drawer_says_how_to_configure_it()
    {
        var client = await _fx.App.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        UseServicesOf(_fx.App.Services); // the suite's app has no assistant settings
        var cut = Render<AssistantDrawer>(ps => ps.Add(c => c.Project, p));
        var notice = cut.Find("#assistant-not-configured").TextContent;
        foreach (var key in new[] { "DbStudio:Assistant:Endpoint", "DbStudio:Assistant:Model", "DbStudio:Assistant:ApiKey", "11434/v1" })
            Assert.Contains(key, notice);
        Assert.Empty(cut.FindAll("#assistant-send"));
    }
}
