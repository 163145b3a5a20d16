// Registration tells no one whether an email has an account (issue 12): POST /api/auth/register and the browser form
// answer a registered email exactly as a new one, change nothing, and log (at Information, without the password) that
// it happened — there is no mail server to tell the owner.
using System.Net;
using System.Text.RegularExpressions;
using DbStudio.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace DbStudio.Tests.Endpoints;

public partial class RegistrationTests(TestApp app)
{
    [GeneratedRegex("name=\"__RequestVerificationToken\"[^>]*value=\"([^\"]+)\"")]
    private static partial Regex Token();

    private sealed class LoggedFactory(string cs, CapturingLoggerProvider logs) : AppFactory(cs)
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureLogging(l => l.AddProvider(logs));
        }
    }

    /// <summary>Status, content type and body, less the request's own traceId.</summary>
    private static async Task<(HttpStatusCode, string, string)> Answer(HttpResponseMessage res) =>
        (res.StatusCode, res.Content.Headers.ContentType?.ToString() ?? "",
            TraceId().Replace(await res.Content.ReadAsStringAsync(), ""));

    [GeneratedRegex(",?\"traceId\":\"[^\"]*\"")]
    private static partial Regex TraceId();

    [Fact]
    public async Task The_api_answers_a_registered_email_as_a_new_one_changes_nothing_and_logs_it()
    {
        var logs = new CapturingLoggerProvider();
        await using var factory = new LoggedFactory(app.Db.PlatformConnectionString, logs);
        var http = factory.CreateClient();
        var email = $"taken{Guid.NewGuid():N}@example.com";
        var first = await Answer(await http.PostAsJsonAsync("/api/auth/register", new { email, password = "first password" }));
        var again = await Answer(await http.PostAsJsonAsync("/api/auth/register", new { email = email.ToUpperInvariant(), password = "second password" }));
        var fresh = await Answer(await http.PostAsJsonAsync("/api/auth/register", new { email = $"new{Guid.NewGuid():N}@example.com", password = "second password" }));
        Assert.Equal(HttpStatusCode.OK, first.Item1);
        Assert.Equal(first, again);
        Assert.Equal(fresh, again);

        // Nothing changed: the first password still works, the second does not.
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsJsonAsync("/api/auth/login", new { email, password = "first password" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsJsonAsync("/api/auth/login", new { email, password = "second password" })).StatusCode);

        // Bad input is refused alike for both: it does not depend on who is registered.
        var shortForTaken = await Answer(await http.PostAsJsonAsync("/api/auth/register", new { email, password = "short" }));
        var shortForNew = await Answer(await http.PostAsJsonAsync("/api/auth/register", new { email = "someone.new@example.com", password = "short" }));
        Assert.Equal(HttpStatusCode.BadRequest, shortForTaken.Item1);
        Assert.Equal(shortForNew, shortForTaken);

        var line = Assert.Single(logs.Lines, l => l.StartsWith("Information DbStudio.Accounts") && l.Contains(email.ToUpperInvariant()));
        Assert.Contains("already has an account", line);
        Assert.DoesNotContain(logs.Lines, l => l.Contains("second password") || l.Contains("first password"));
    }

    [Fact]
    public async Task The_browser_form_answers_a_registered_email_as_a_new_one()
    {
        var existing = $"form{Guid.NewGuid():N}@example.com";
        (await app.Factory.CreateClient().PostAsJsonAsync("/api/auth/register", new { email = existing, password = "owner password" })).EnsureSuccessStatusCode();

        async Task<string> Register(string email, string password)
        {
            var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, UseCookies = true }) { BaseAddress = app.BaseUrl };
            var token = Token().Match(await browser.GetStringAsync("/account/register")).Groups[1].Value;
            var res = await browser.PostAsync("/account/register", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["email"] = email, ["password"] = password, ["__RequestVerificationToken"] = token,
            }));
            Assert.Equal(HttpStatusCode.Redirect, res.StatusCode);
            // No sign-in cookie either way: a cookie would tell a new account from an existing one.
            Assert.DoesNotContain(res.Headers.TryGetValues("Set-Cookie", out var c) ? c : [], v => v.StartsWith("dbstudio="));
            return res.Headers.Location!.OriginalString;
        }

        var forNew = await Register($"form{Guid.NewGuid():N}@example.com", "a new password");
        var forTaken = await Register(existing, "someone else's password");
        Assert.Equal("/account/login?registered=1", forNew);
        Assert.Equal(forNew, forTaken);
        Assert.Equal(await Register("short@example.com", "short"), await Register(existing, "short"));

        var page = await new HttpClient { BaseAddress = app.BaseUrl }.GetStringAsync(forNew);
        Assert.Contains("Sign in with your email and password", page);
    }
}
