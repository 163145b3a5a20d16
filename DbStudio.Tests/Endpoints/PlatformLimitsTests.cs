// Per-account and per-address limits of the platform (issue 12): registrations per address (API and form), projects
// created per hour and owned per account — clear 429s with a truthful Retry-After, a 403 naming the quota. The app
// reads time from a clock the test moves, so nothing here depends on the machine's speed.
using System.Net;
using System.Text.Json;
using DbStudio.Core.Limits;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace DbStudio.Tests.Endpoints;

/// <summary>The app with its own settings and a clock of the test's.</summary>
public sealed class ClockedAppFactory(string platformConnectionString, IReadOnlyDictionary<string, string?> settings, TimeProvider clock)
    : AppFactory(platformConnectionString, settings)
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(s => s.AddSingleton(clock));
    }
}

public class PlatformLimitsTests(TestApp app)
{
    private static object Account() => new { email = $"u{Guid.NewGuid():N}@example.com", password = "a long enough password" };

    [Fact]
    public async Task Registrations_beyond_the_per_address_rate_get_429_with_a_truthful_Retry_After_on_the_api_and_the_form()
    {
        var clock = new ManualClock();
        await using var limited = new ClockedAppFactory(app.Db.PlatformConnectionString,
            new Dictionary<string, string?> { ["DbStudio:Limits:RegistrationsPerHour"] = "2" }, clock);
        var http = limited.CreateClient(new() { AllowAutoRedirect = false });

        Assert.True((await http.PostAsJsonAsync("/api/auth/register", Account())).IsSuccessStatusCode);
        Assert.True((await http.PostAsJsonAsync("/api/auth/register", Account())).IsSuccessStatusCode);
        var refused = await http.PostAsJsonAsync("/api/auth/register", Account());
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal("1800", refused.Headers.GetValues("Retry-After").Single()); // 2 an hour: the next one in 30 min
        var body = await refused.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("registration_rate", body.GetProperty("code").GetString());
        Assert.Equal(2, body.GetProperty("limit").GetInt32());
        Assert.Contains("RegistrationsPerHour", body.GetProperty("message").GetString());

        // The browser form shares the address's budget: the same 429 and Retry-After, as a page.
        var form = await http.PostAsync("/account/register", new FormUrlEncodedContent(new Dictionary<string, string>
            { ["email"] = "form@example.com", ["password"] = "a long enough password" }));
        Assert.Equal(HttpStatusCode.TooManyRequests, form.StatusCode);
        Assert.Equal("1800", form.Headers.GetValues("Retry-After").Single());
        Assert.Contains("Too many accounts", await form.Content.ReadAsStringAsync());

        // Retry-After tells the truth: a second early is still refused, on time is accepted.
        clock.Advance(TimeSpan.FromSeconds(1799));
        var early = await http.PostAsJsonAsync("/api/auth/register", Account());
        Assert.Equal(HttpStatusCode.TooManyRequests, early.StatusCode);
        Assert.Equal("1", early.Headers.GetValues("Retry-After").Single());
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True((await http.PostAsJsonAsync("/api/auth/register", Account())).IsSuccessStatusCode);
        // Signing in is not registering: not limited here.
        Assert.NotEqual(HttpStatusCode.TooManyRequests, (await http.PostAsJsonAsync("/api/auth/login", Account())).StatusCode);
    }

    [Fact]
    public async Task Project_creation_is_rate_limited_and_the_account_quota_answers_403_naming_the_limit_in_the_api_and_the_ui()
    {
        var clock = new ManualClock();
        await using var limited = new ClockedAppFactory(app.Db.PlatformConnectionString, new Dictionary<string, string?>
        {
            ["DbStudio:Limits:ProjectsCreatedPerHour"] = "2",
            ["DbStudio:Limits:ProjectsPerAccount"] = "3",
        }, clock);
        var http = limited.CreateClient();
        var email = $"u{Guid.NewGuid():N}@example.com";
        var creds = new { email, password = "a long enough password" };
        (await http.PostAsJsonAsync("/api/auth/register", creds)).EnsureSuccessStatusCode();
        var login = await (await http.PostAsJsonAsync("/api/auth/login", creds)).Content.ReadFromJsonAsync<JsonElement>();
        http.DefaultRequestHeaders.Authorization = new("Bearer", login.GetProperty("accessToken").GetString());

        Task<HttpResponseMessage> Create(string name) => http.PostAsJsonAsync("/api/projects", new { name });
        Assert.Equal(HttpStatusCode.Created, (await Create("one")).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Create("two")).StatusCode);
        var tooFast = await Create("three");
        Assert.Equal(HttpStatusCode.TooManyRequests, tooFast.StatusCode);
        Assert.Equal("1800", tooFast.Headers.GetValues("Retry-After").Single());
        var rate = await tooFast.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("project_creation_rate", rate.GetProperty("code").GetString());
        Assert.Equal(1800, rate.GetProperty("retryAfter").GetInt32());

        clock.Advance(TimeSpan.FromMinutes(30));
        Assert.Equal(HttpStatusCode.Created, (await Create("three")).StatusCode);
        var over = await Create("four"); // the quota is checked first and spends no permit
        Assert.Equal(HttpStatusCode.Forbidden, over.StatusCode); // the quota, not the rate: no Retry-After
        Assert.False(over.Headers.Contains("Retry-After"));
        var quota = await over.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("project_quota", quota.GetProperty("code").GetString());
        Assert.Equal(3, quota.GetProperty("limit").GetInt32());
        Assert.Contains("ProjectsPerAccount", quota.GetProperty("message").GetString());
        var list = await http.GetFromJsonAsync<JsonElement>("/api/projects");
        Assert.Equal(3, list.GetArrayLength()); // nothing was provisioned for the refused ones

        // The panel's "Create project" calls ProjectService in process: the same refusal, which the page shows.
        await using var scope = limited.Services.CreateAsyncScope();
        var userId = (await scope.ServiceProvider.GetRequiredService<UserManager<PlatformUser>>().FindByEmailAsync(email))!.Id;
        var e = await Assert.ThrowsAsync<PlatformLimitException>(() =>
            scope.ServiceProvider.GetRequiredService<ProjectService>().CreateAsync(userId, "from the ui", "http://localhost"));
        Assert.Equal(403, e.Status);
        // Deleting one makes room again, once the rate allows (a fresh sign-in: bearer tokens live an hour of the clock).
        var first = list[0].GetProperty("id").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await http.DeleteAsync($"/api/projects/{first}")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await Create("four")).StatusCode);
        clock.Advance(TimeSpan.FromMinutes(30));
        login = await (await http.PostAsJsonAsync("/api/auth/login", creds)).Content.ReadFromJsonAsync<JsonElement>();
        http.DefaultRequestHeaders.Authorization = new("Bearer", login.GetProperty("accessToken").GetString());
        Assert.Equal(HttpStatusCode.Created, (await Create("four")).StatusCode);
    }
}
