// What a person typed, checked: the value, or what is wrong with it in words to show them. User input that fails a
// check is an answer, not an exception; exceptions stay for the program's own mistakes.
namespace DbStudio.Core;

public readonly record struct Validated<T>(T Value, string? Problem)
{
    public bool IsValid => Problem is null;

    public static Validated<T> Ok(T value) => new(value, null);

    public static Validated<T> Invalid(string problem) => new(default!, problem);
}
