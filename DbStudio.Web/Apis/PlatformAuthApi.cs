// Platform accounts over JSON (DESIGN §7): POST /api/auth/register and POST /api/auth/login. Identity's MapIdentityApi
// still serves the rest of /api/auth (refresh, confirmEmail, manage/…); these two replace its own, which lock an account
// after 5 wrong passwords (so anyone could lock out a known email) and tell whether an email is registered.
// Both doors to an account — this one and the browser form (AccountEndpoints) — share LoginThrottle and PlatformRegistration.
using System.ComponentModel.DataAnnotations;
using System.Text;
using DbStudio.Core.Auth;
using DbStudio.Core.Platform;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.WebUtilities;

namespace DbStudio.Web.Apis;

public sealed record PlatformRegisterRequest(string? Email, string? Password);
public sealed record PlatformLoginRequest(string? Email, string? Password, string? TwoFactorCode = null, string? TwoFactorRecoveryCode = null);

public static class PlatformAuthApi
{
    /// <summary>Maps before MapIdentityApi's endpoints of the same route, and wins over them (a lower order).</summary>
    public static IEndpointRouteBuilder MapPlatformAuthApi(this IEndpointRouteBuilder app)
    {
        var g = app.MapGroup("/api/auth").WithTags("Platform accounts").WithStrictJson().WithOrder(-1);
        g.MapPost("/register", Register);
        g.MapPost("/login", Login);
        return app;
    }

    /// <summary>200 for a new email and for a registered one alike (no account enumeration); 400 for a bad email or password.</summary>
    public static async Task<Results<Ok, ValidationProblem>> Register(Strict<PlatformRegisterRequest> body, HttpContext ctx,
        UserManager<PlatformUser> users, IEmailSender<PlatformUser> mail, LinkGenerator links, ILoggerFactory logs)
    {
        var (email, password) = body.Value;
        var (result, created) = await PlatformRegistration.RegisterAsync(users, email, password, logs);
        if (!result.Succeeded)
            return TypedResults.ValidationProblem(result.Errors.GroupBy(e => e.Code)
                .ToDictionary(g => g.Key, g => g.Select(e => e.Description).ToArray()));
        if (created is not null)
        {
            // As Identity's own register does: a confirmation link, through whatever sender is configured (none by default).
            var code = WebEncoders.Base64UrlEncode(Encoding.UTF8.GetBytes(await users.GenerateEmailConfirmationTokenAsync(created)));
            var link = links.GetUriByName(ctx, "MapIdentityApi-/api/auth/confirmEmail", new { userId = created.Id, code });
            if (link is not null) await mail.SendConfirmationLinkAsync(created, email!, System.Text.Encodings.Web.HtmlEncoder.Default.Encode(link));
        }
        return TypedResults.Ok();
    }

    /// <summary>Bearer token (or a cookie with ?useCookies=true); 401 for a wrong password, 429 with Retry-After when throttled.</summary>
    public static async Task<Results<EmptyHttpResult, ProblemHttpResult>> Login(Strict<PlatformLoginRequest> body, bool? useCookies,
        bool? useSessionCookies, HttpContext ctx, SignInManager<PlatformUser> signIn, LoginThrottle throttle)
    {
        var login = body.Value;
        var attempt = throttle.Begin(ctx.Connection.RemoteIpAddress, login.Email);
        if (!attempt.Allowed)
        {
            var seconds = RetryAfterSeconds(attempt.RetryAfter);
            ctx.Response.Headers.RetryAfter = seconds.ToString();
            return TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "Too many sign-in attempts",
                detail: $"Too many sign-in attempts for this account from your address; try again in {seconds} s");
        }

        var cookies = useCookies == true || useSessionCookies == true;
        var persistent = useCookies == true && useSessionCookies != true;
        signIn.AuthenticationScheme = cookies ? IdentityConstants.ApplicationScheme : IdentityConstants.BearerScheme;
        var result = await signIn.PasswordSignInAsync(login.Email ?? "", login.Password ?? "", persistent, lockoutOnFailure: false);
        if (result.RequiresTwoFactor)
        {
            if (!string.IsNullOrEmpty(login.TwoFactorCode))
                result = await signIn.TwoFactorAuthenticatorSignInAsync(login.TwoFactorCode, persistent, rememberClient: persistent);
            else if (!string.IsNullOrEmpty(login.TwoFactorRecoveryCode))
                result = await signIn.TwoFactorRecoveryCodeSignInAsync(login.TwoFactorRecoveryCode);
        }
        if (!result.Succeeded) return TypedResults.Problem(result.ToString(), statusCode: StatusCodes.Status401Unauthorized);
        attempt.Succeeded();
        return TypedResults.Empty; // the sign-in wrote the token (or set the cookie)
    }

    /// <summary>Whole seconds, rounded up, at least 1: a client that waits this long is let in.</summary>
    public static int RetryAfterSeconds(TimeSpan wait) => Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
}

/// <summary>Registration for both doors: the same answer whether or not the email already has an account.</summary>
public static class PlatformRegistration
{
    private static readonly EmailAddressAttribute EmailAttribute = new();

    /// <summary>
    /// Fails only for a bad email or password — checks that do not depend on who is registered. For an email that has an
    /// account nothing changes and the answer is a success all the same (Created is null); that is logged, for the owner
    /// may be told by mail once a sender is configured.
    /// </summary>
    public static async Task<(IdentityResult Result, PlatformUser? Created)> RegisterAsync(UserManager<PlatformUser> users,
        string? email, string? password, ILoggerFactory logs)
    {
        if (string.IsNullOrWhiteSpace(email) || !EmailAttribute.IsValid(email))
            return (IdentityResult.Failed(users.ErrorDescriber.InvalidEmail(email)), null);
        var user = new PlatformUser { UserName = email, Email = email };
        password ??= "";
        var errors = new List<IdentityError>();
        foreach (var validator in users.PasswordValidators)
            if (await validator.ValidateAsync(users, user, password) is { Succeeded: false } bad) errors.AddRange(bad.Errors);
        if (errors.Count > 0) return (IdentityResult.Failed([.. errors]), null);

        var existing = await users.FindByEmailAsync(email);
        if (existing is null)
        {
            var created = await users.CreateAsync(user, password);
            if (created.Succeeded) return (created, user);
            if (!created.Errors.All(e => e.Code is nameof(IdentityErrorDescriber.DuplicateEmail) or nameof(IdentityErrorDescriber.DuplicateUserName)))
                return (created, null);
            existing = await users.FindByEmailAsync(email); // registered by a concurrent request
        }
        else
        {
            users.PasswordHasher.HashPassword(user, password); // the work a new account costs, so timing tells nothing either
        }
        logs.CreateLogger("DbStudio.Accounts").LogInformation(
            "Registration for {Email}, which already has an account ({UserId}): nothing changed, and the answer was the same as for a new account",
            email, existing?.Id);
        return (IdentityResult.Success, null);
    }
}
